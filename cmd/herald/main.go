// Command herald is the Herald realtime pub/sub server and its command-line
// client. `herald serve` runs a server; the other subcommands talk to one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `herald: realtime pub/sub over HTTP and Server-Sent Events

Usage:
  herald serve [flags]                    run a server (embedded SQLite in ./herald-data by default)
  herald app create NAME | list | delete APP
  herald topic create APP TOPIC | list APP | delete APP TOPIC
  herald publish APP TOPIC JSON           publish one message (--idempotency-key K makes a retry safe)
  herald publish --batch FILE|- APP       publish NDJSON lines {"topic":…,"message":…}, 1000 per transaction
  herald key list APP | create APP SCOPE... | revoke APP ID
                                          app keys: issue, list, revoke (rotate without downtime)
  herald trigger create APP TOPIC URL | list APP TOPIC | delete APP TOPIC ID
                                          webhook triggers: POST each message of TOPIC to URL
  herald trigger enable|disable|test|attempts APP TOPIC ID | rotate-secret APP TOPIC ID
                                          re-enable, pause, send a test, show attempts, rotate the secret
  herald dead-letters list APP | redrive APP ID...
                                          webhook deliveries that failed every attempt
  herald tail APP TOPIC [TOPIC...]        print events as they arrive, reconnecting with Last-Event-ID
  herald token [--ttl 15m] APP TOPIC...   mint a browser token for those topics (needs a manage key)
  herald bench [flags]                    load-test a server (starts its own unless --url is given)

Run "herald COMMAND -h" for a command's flags. Every flag has a HERALD_* variable
that mirrors it (--data-dir and HERALD_DATA_DIR).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "herald:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

// run is the whole program, with its environment passed in so tests can run
// it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "app":
		return appCmd(ctx, rest, getenv, stdout, stderr)
	case "topic":
		return topicCmd(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return publishCmd(ctx, rest, getenv, stdout, stderr)
	case "key":
		return keyCmd(ctx, rest, getenv, stdout, stderr)
	case "trigger":
		return triggerCmd(ctx, rest, getenv, stdout, stderr)
	case "dead-letters":
		return deadLettersCmd(ctx, rest, getenv, stdout, stderr)
	case "tail":
		return tailCmd(ctx, rest, getenv, stdout, stderr)
	case "token":
		return tokenCmd(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
	}
}
