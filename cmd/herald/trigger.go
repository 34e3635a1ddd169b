package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func triggerCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const u = "usage: herald trigger create [--secret whsec_…] APP TOPIC URL | list APP TOPIC | delete APP TOPIC ID | " + triggerAdminUsage
	if len(args) == 0 {
		fmt.Fprintln(stderr, u)
		return errUsage
	}
	fs, cf := newClientFlagSet("trigger "+args[0], getenv, stderr)
	switch args[0] {
	case "create":
		secret := fs.String("secret", "", "signing secret (whsec_ + base64 of 24 to 64 bytes); empty: the server generates one")
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger create [--secret whsec_…] APP TOPIC URL")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		t, err := c.CreateTrigger(ctx, pos[0], pos[1], pos[2], *secret)
		if err != nil {
			return err
		}
		// JSON, like app create: the secret is shown this once.
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	case "list":
		pos, err := parseArgs(fs, args[1:], 2, "herald trigger list APP TOPIC")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ts, err := c.ListTriggers(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tPENDING\tDELIVERED\tDEAD\tURL")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", t.ID, t.State, t.Pending, t.Delivered, t.Dead, t.URL)
		}
		return tw.Flush()
	case "delete":
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger delete APP TOPIC ID")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := c.DeleteTrigger(ctx, pos[0], pos[1], pos[2]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted trigger %s\n", pos[2])
		return nil
	default:
		if handled, err := triggerAdminCmd(ctx, args, fs, cf, stdout); handled {
			return err
		}
		fmt.Fprintln(stderr, u)
		return errUsage
	}
}

func deadLettersCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const u = "usage: herald dead-letters list [--limit N] APP | redrive APP ID..."
	if len(args) == 0 {
		fmt.Fprintln(stderr, u)
		return errUsage
	}
	fs, cf := newClientFlagSet("dead-letters "+args[0], getenv, stderr)
	switch args[0] {
	case "list":
		limit := fs.Int("limit", 0, "most dead letters to list, newest first (0: the server's default, 100)")
		pos, err := parseArgs(fs, args[1:], 1, "herald dead-letters list [--limit N] APP")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ds, err := c.DeadLetters(ctx, pos[0], *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTOPIC\tMESSAGE\tATTEMPTS\tSTATUS\tFAILED\tLAST ERROR")
		for _, d := range ds {
			status := "-"
			if d.LastStatus != nil {
				status = fmt.Sprint(*d.LastStatus)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Topic, d.MessageID, d.Attempts, status,
				d.FailedAt.Format(time.RFC3339), d.LastError)
		}
		return tw.Flush()
	case "redrive":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() < 2 {
			fmt.Fprintln(stderr, "usage: herald dead-letters redrive APP ID...")
			return errUsage
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		app := fs.Arg(0)
		for _, id := range fs.Args()[1:] {
			if err := c.Redrive(ctx, app, id); err != nil {
				return fmt.Errorf("redrive %s: %w", id, err)
			}
			fmt.Fprintf(stdout, "queued %s again\n", id)
		}
		return nil
	default:
		fmt.Fprintln(stderr, u)
		return errUsage
	}
}
