package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/heraldhq/herald/client"
)

func tailCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("tail", getenv, stderr)
	from := fs.String("last-event-id", "", "resume after this position instead of starting with new events")
	if _, err := parseArgsMin(fs, args, 2, -1, "herald tail [flags] APP TOPIC [TOPIC...]"); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	s := c.Stream(ctx, fs.Arg(0), fs.Args()[1:], client.StreamOptions{LastEventID: *from})
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		switch ev.Type {
		case client.EventMessage:
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", ev.Message.Topic, ev.Message.ID, ev.Message.Message)
		case client.EventLagged:
			fmt.Fprintf(stderr, "lagged: %d events of %s were lost\n", ev.Missed, ev.Topic)
		case client.EventTopicDeleted:
			fmt.Fprintf(stderr, "topic %s was deleted\n", ev.Topic)
		}
	}
}
