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

// triggerAdminUsage lists the trigger subcommands of this file.
const triggerAdminUsage = "enable|disable APP TOPIC ID | rotate-secret [--secret whsec_…] [--overlap 24h] APP TOPIC ID | test APP TOPIC ID | attempts [--limit N] APP TOPIC ID"

// triggerAdminCmd runs the trigger subcommands that act on one trigger
// after its creation. handled is false for a subcommand it does not know.
func triggerAdminCmd(ctx context.Context, args []string, fs *flag.FlagSet, cf *clientFlags, stdout io.Writer) (handled bool, err error) {
	printJSON := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	switch args[0] {
	case "enable", "disable":
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger "+args[0]+" APP TOPIC ID")
		if err != nil {
			return true, err
		}
		c, err := cf.client()
		if err != nil {
			return true, err
		}
		state := map[string]string{"enable": "active", "disable": "disabled"}[args[0]]
		t, err := c.UpdateTrigger(ctx, pos[0], pos[1], pos[2], client.TriggerUpdate{State: state})
		if err != nil {
			return true, err
		}
		fmt.Fprintf(stdout, "trigger %s is %s (%d pending)\n", t.ID, t.State, t.Pending)
		return true, nil
	case "rotate-secret":
		secret := fs.String("secret", "", "the new secret (whsec_ + base64 of 24 to 64 bytes); empty: the server generates one")
		overlap := fs.String("overlap", "24h", "how long the old secret keeps signing beside the new one (0s to 168h)")
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger rotate-secret [--secret whsec_…] [--overlap 24h] APP TOPIC ID")
		if err != nil {
			return true, err
		}
		c, err := cf.client()
		if err != nil {
			return true, err
		}
		t, err := c.UpdateTrigger(ctx, pos[0], pos[1], pos[2], client.TriggerUpdate{
			RotateSecret: true, Secret: *secret, PreviousSecretTTL: *overlap,
		})
		if err != nil {
			return true, err
		}
		// JSON, like trigger create: the new secret is shown this once.
		return true, printJSON(t)
	case "test":
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger test APP TOPIC ID")
		if err != nil {
			return true, err
		}
		c, err := cf.client()
		if err != nil {
			return true, err
		}
		a, err := c.TestTrigger(ctx, pos[0], pos[1], pos[2])
		if err != nil {
			return true, err
		}
		if err := printJSON(a); err != nil {
			return true, err
		}
		if !a.Delivered {
			return true, fmt.Errorf("the test delivery failed: %s", a.Error)
		}
		return true, nil
	case "attempts":
		limit := fs.Int("limit", 0, "most attempts to list, newest first (0: 100)")
		pos, err := parseArgs(fs, args[1:], 3, "herald trigger attempts [--limit N] APP TOPIC ID")
		if err != nil {
			return true, err
		}
		c, err := cf.client()
		if err != nil {
			return true, err
		}
		as, err := c.Attempts(ctx, pos[0], pos[1], pos[2], *limit)
		if err != nil {
			return true, err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tDELIVERY\tSTATUS\tLATENCY\tNEXT RETRY\tERROR")
		for _, a := range as {
			status, next := "-", "-"
			if a.Status != nil {
				status = fmt.Sprint(*a.Status)
			}
			if a.NextRetry != nil {
				next = a.NextRetry.Format(time.RFC3339)
			}
			id := a.DeliveryID
			if a.Test {
				id += " (test)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fms\t%s\t%s\n", a.At.Format(time.RFC3339), id, status, a.LatencyMS, next, a.Error)
		}
		return true, tw.Flush()
	}
	return false, nil
}
