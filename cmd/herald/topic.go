package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

func topicCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const u = "usage: herald topic create APP TOPIC | list APP | delete APP TOPIC"
	if len(args) == 0 {
		fmt.Fprintln(stderr, u)
		return errUsage
	}
	fs, cf := newClientFlagSet("topic "+args[0], getenv, stderr)
	switch args[0] {
	case "create":
		pos, err := parseArgs(fs, args[1:], 2, "herald topic create APP TOPIC")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		_, created, err := c.CreateTopic(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "created topic %s\n", pos[1])
		} else {
			fmt.Fprintf(stdout, "topic %s already exists\n", pos[1])
		}
		return nil
	case "list":
		pos, err := parseArgs(fs, args[1:], 1, "herald topic list APP")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ts, err := c.ListTopics(ctx, pos[0])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tLAST ID\tSUBSCRIBERS")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", t.Name, t.LastID, t.Subscribers)
		}
		return tw.Flush()
	case "delete":
		pos, err := parseArgs(fs, args[1:], 2, "herald topic delete APP TOPIC")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := c.DeleteTopic(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted topic %s\n", pos[1])
		return nil
	default:
		fmt.Fprintln(stderr, u)
		return errUsage
	}
}
