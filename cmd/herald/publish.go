package main

import (
	"context"
	"fmt"
	"io"
)

func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("publish", getenv, stderr)
	key := fs.String("idempotency-key", "", "makes a retry of this publish within 24 h return the first one's id and store nothing")
	pos, err := parseArgs(fs, args, 3, "herald publish [--idempotency-key K] [flags] APP TOPIC JSON")
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *key == "" {
		m, err := c.Publish(ctx, pos[0], pos[1], []byte(pos[2]))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published to %s/%s: id %s\n", pos[0], m.Topic, m.ID)
		return nil
	}
	m, replayed, err := c.PublishIdempotent(ctx, pos[0], pos[1], *key, []byte(pos[2]))
	if err != nil {
		return err
	}
	if replayed {
		fmt.Fprintf(stdout, "already published to %s/%s with this key: id %s\n", pos[0], m.Topic, m.ID)
		return nil
	}
	fmt.Fprintf(stdout, "published to %s/%s: id %s\n", pos[0], m.Topic, m.ID)
	return nil
}
