package main

import (
	"context"
	"fmt"
	"io"
)

func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("publish", getenv, stderr)
	pos, err := parseArgs(fs, args, 3, "herald publish APP TOPIC JSON")
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	m, err := c.Publish(ctx, pos[0], pos[1], []byte(pos[2]))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published to %s/%s: id %s\n", pos[0], m.Topic, m.ID)
	return nil
}
