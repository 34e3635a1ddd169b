package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/heraldhq/herald/client"
)

func appCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: herald app create NAME | list | delete APP | limits APP [--streams N] [--publish-rate R] [--publish-burst N] [--topics N] [--triggers N]")
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
	case "limits":
		return appLimitsCmd(ctx, fs, cf, args[1:], stdout)
	default:
		fmt.Fprintln(stderr, "usage: herald app create NAME | list | delete APP | limits APP [--streams N] [--publish-rate R] [--publish-burst N] [--topics N] [--triggers N]")
		return errUsage
	}
}

// appLimitsCmd sets an app's own limits: the flags given, the others left
// to the server's defaults (the set replaces the app's previous one).
func appLimitsCmd(ctx context.Context, fs *flag.FlagSet, cf *clientFlags, args []string, stdout io.Writer) error {
	streams := fs.Int("streams", 0, "event streams the app may hold open per node (-1 unlimited, 0 the default)")
	rate := fs.Float64("publish-rate", 0, "publishes per second per node (-1 unlimited, 0 the default)")
	burst := fs.Int("publish-burst", 0, "publishes at once above the rate (0: one second's worth)")
	topics := fs.Int("topics", 0, "topics the app may have (-1 unlimited, 0 the default)")
	triggers := fs.Int("triggers", 0, "webhook triggers the app may have (-1 unlimited, 0 the default)")
	// Flags may come after the app, as in the other subcommands' usage.
	var app []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		app = append(app, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(app) != 1 {
		fmt.Fprintln(fs.Output(), "usage: herald app limits APP [--streams N] [--publish-rate R] [--publish-burst N] [--topics N] [--triggers N]")
		return errUsage
	}
	var l client.Limits
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "streams":
			l.Streams = streams
		case "publish-rate":
			l.PublishRate = rate
		case "publish-burst":
			l.PublishBurst = burst
		case "topics":
			l.Topics = topics
		case "triggers":
			l.Triggers = triggers
		}
	})
	c, err := cf.client()
	if err != nil {
		return err
	}
	out, err := c.SetAppLimits(ctx, app[0], l)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
