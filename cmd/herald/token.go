package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// tokenCmd mints a browser token: the token alone on stdout, so a script
// can take it with $(herald token …), and its expiry on stderr.
func tokenCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("token", getenv, stderr)
	ttl := fs.String("ttl", "", "how long the token lives, 1s to 24h (default 15m)")
	if _, err := parseArgsMin(fs, args, 2, -1, "herald token [--ttl 15m] [flags] APP TOPIC [TOPIC...]"); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	tok, err := c.CreateToken(ctx, fs.Arg(0), fs.Args()[1:], *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok.Token)
	fmt.Fprintf(stderr, "browser token for %v, expires %s\n", tok.Topics, tok.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}
