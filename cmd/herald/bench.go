package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/loadtest"
)

const benchUsage = `usage: herald bench [flags]

Load-tests a Herald server: creates an app and topics, connects SSE
subscribers, publishes at a fixed rate (or as fast as possible with
--rate 0), and reports delivery, loss, latency and the server's CPU and
memory. Without --url it starts its own server (this binary's serve command on
127.0.0.1 and a temporary data directory); HERALD_* variables tune that
server. Messages sent during --warmup are not counted.

Cluster mode: --database-url postgres://… starts the servers on that Postgres
database, and --nodes N starts N of them on it, which deliver each other's
messages through LISTEN/NOTIFY, or through NATS with --broadcast-url
nats://…. Subscribers go round-robin over the nodes;
messages are published through --publish-node (node 0 by default, or "all":
each message through the next node). The report splits end-to-end latency
into subscribers on the node a message was published through and those on
other nodes (cross-node). Use a scratch database (createdb herald_bench):
bench creates its own app and deletes it at the end, and warns when the
database already holds apps. Only --database-url selects Postgres: the
servers bench starts do not inherit HERALD_DATABASE_URL.

Flags:
`

// benchCmd is `herald bench`: the flags become loadtest.Options, and the
// report goes to stdout as a table or, with --json, as JSON.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, asJSON, err := parseBenchFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if opts.URL == "" {
		// The servers bench starts are this binary's serve command.
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find herald binary: %w", err)
		}
		opts.ServeCommand = []string{exe, "serve"}
	}
	opts.Progress = stderr
	rep, err := loadtest.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

// parseBenchFlags reads bench's flags into the options of a run, and
// whether the report is wanted as JSON. --url, --token and --data-dir are
// the client commands' own, but a server is targeted only when --url is
// given on the command line: the default address is no reason to load-test
// whatever listens there. Invalid options are printed to stderr and come
// back as errUsage.
func parseBenchFlags(args []string, getenv func(string) string, stderr io.Writer) (loadtest.Options, bool, error) {
	fs, cf := newClientFlagSet("bench", getenv, stderr)
	var o loadtest.Options
	var maxRate, asJSON bool
	fs.IntVar(&o.Subscribers, "subscribers", 100, "SSE subscribers to connect, spread round-robin over the topics")
	fs.IntVar(&o.Topics, "topics", 1, "topics to create and publish to, round-robin")
	fs.Float64Var(&o.Rate, "rate", 100, "total messages per second over all topics; 0 publishes as fast as possible")
	fs.BoolVar(&maxRate, "max-rate", false, "publish as fast as possible (the same as --rate 0): measures publish throughput")
	fs.IntVar(&o.Publishers, "publishers", 4, "concurrent publishers, each waiting for one publish's 202 before sending the next")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to publish and measure (with --idle: to hold the connections)")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "how long to publish before measuring (with --idle: to settle before sampling memory)")
	fs.DurationVar(&o.Grace, "grace", 5*time.Second, "longest wait for in-flight events after the last publish; it ends early when all have arrived")
	fs.IntVar(&o.Batch, "batch", 1, "messages per publish request: above 1, each request is a batch publish (POST /v1/apps/{app}/messages) of that many")
	fs.IntVar(&o.Size, "size", 128, `bytes of each message, a JSON object {"seq":N,"t":UNIX_NANOS,"pad":"xx…"}`)
	fs.BoolVar(&o.Idle, "idle", false, "connect the subscribers and publish nothing: measures the memory of an idle connection")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", time.Minute, "how long all subscribers together may take to connect")
	fs.IntVar(&o.ConnectConcurrency, "connect-concurrency", 100, "subscribers connecting at the same time")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "postgres:// URL of a scratch database: the servers bench starts use the Postgres store (cluster mode); empty: SQLite")
	fs.StringVar(&o.BroadcastURL, "broadcast-url", "", "nats:// URL the servers bench starts carry cluster notices over, instead of LISTEN/NOTIFY; needs --database-url")
	fs.IntVar(&o.Nodes, "nodes", 1, "servers to start on --database-url, each with its own port and data directory; more than 1 needs --database-url")
	publishNode := fs.String("publish-node", "0", `node every message is published through, from 0; "all": each message through the next node in turn`)
	// --url means something else here: given, it names the server to load;
	// absent, bench starts its own (the default address is not used).
	urlFlag := fs.Lookup("url")
	urlFlag.Usage = "server to load-test, with an admin token from --token; without --url bench starts its own server"
	urlFlag.DefValue = ""
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0, "herald bench [flags]"); err != nil {
		return loadtest.Options{}, false, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "url" {
			o.URL = cf.url
		}
	})
	if o.URL != "" {
		tok, err := benchToken(cf)
		if err != nil {
			return loadtest.Options{}, false, err
		}
		o.Token = tok
	}
	if maxRate {
		o.Rate = 0
	}
	// A bad --publish-node is reported after the other invalid options,
	// which are checked with the node it leaves (0).
	n, nodeErr := loadtest.ParsePublishNode(*publishNode, o.Nodes)
	o.PublishNode = n
	if err := errors.Join(o.Validate(), nodeErr); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return loadtest.Options{}, false, errUsage
	}
	return o, asJSON, nil
}

// benchToken finds the admin token the way the other client commands do
// (clientFlags.client): --token or the environment, else the admin-token
// file in --data-dir. Bench needs the string itself, to create its app.
func benchToken(cf *clientFlags) (string, error) {
	if cf.token != "" {
		return cf.token, nil
	}
	tok, err := auth.ReadAdminToken(cf.dataDir)
	if err == nil && tok == "" {
		err = fmt.Errorf("no admin token: pass --token or set HERALD_ADMIN_TOKEN (none found in %s)", cf.dataDir)
	}
	return tok, err
}
