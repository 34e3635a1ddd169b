package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

func keyCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const u = "usage: herald key list APP | create APP SCOPE... | revoke APP ID"
	if len(args) == 0 {
		fmt.Fprintln(stderr, u)
		return errUsage
	}
	fs, cf := newClientFlagSet("key "+args[0], getenv, stderr)
	switch args[0] {
	case "list":
		pos, err := parseArgs(fs, args[1:], 1, "herald key list APP")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		keys, err := c.ListKeys(ctx, pos[0])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPES\tCREATED\tLAST USED")
		for _, k := range keys {
			used := "never"
			if k.LastUsedAt != nil {
				used = k.LastUsedAt.Format("2006-01-02T15:04Z07:00")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, strings.Join(k.Scopes, ","), k.CreatedAt.Format(time.RFC3339), used)
		}
		return tw.Flush()
	case "create":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() < 2 {
			fmt.Fprintln(stderr, "usage: herald key create APP SCOPE...   (scopes: publish, subscribe, manage)")
			return errUsage
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		k, err := c.CreateKey(ctx, fs.Arg(0), fs.Args()[1:])
		if err != nil {
			return err
		}
		// JSON, like app create: the key is shown this once.
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(k)
	case "revoke":
		pos, err := parseArgs(fs, args[1:], 2, "herald key revoke APP ID")
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		if err := c.RevokeKey(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %s\n", pos[1])
		return nil
	default:
		fmt.Fprintln(stderr, u)
		return errUsage
	}
}
