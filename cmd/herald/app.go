package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func appCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: herald app create NAME | list | delete APP")
		return errUsage
	}
	fs, cf := newClientFlagSet("app "+args[0], getenv, stderr)
	switch args[0] {
	case "create":
		pos, err := parseArgs(fs, args[1:], 1, "herald app create NAME")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		app, err := c.CreateApp(ctx, pos[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(app)
	case "list":
		if _, err := parseArgs(fs, args[1:], 0, "herald app list"); err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		apps, err := c.ListApps(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, a := range apps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.ID, a.Name, a.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "delete":
		pos, err := parseArgs(fs, args[1:], 1, "herald app delete APP")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := c.DeleteApp(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted app %s\n", pos[0])
		return nil
	default:
		fmt.Fprintln(stderr, "usage: herald app create NAME | list | delete APP")
		return errUsage
	}
}
