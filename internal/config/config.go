// Package config turns flags and HERALD_* environment variables into one
// plain Config. Every flag has a variable that mirrors it (--data-dir and
// HERALD_DATA_DIR); a flag given on the command line wins over the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/httpapi"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/webhook"
)

// Config is the server's configuration.
type Config struct {
	// Addr is the TCP address to listen on.
	Addr string
	// DataDir holds the SQLite file and generated secrets.
	DataDir string
	// DatabaseURL, when set to a postgres:// URL or a libpq key=value
	// string, selects the Postgres store.
	// Empty means embedded SQLite in DataDir.
	DatabaseURL string
	// DatabaseWriteTimeout bounds, with DatabaseURL, one attempt at
	// committing a group of publishes, and then the time spent asking
	// Postgres whether a commit whose connection was lost went through;
	// past it the publishes are answered 503 commit_unknown.
	DatabaseWriteTimeout time.Duration
	// BroadcastURL, when set to a nats:// URL, carries cluster notices over
	// NATS instead of Postgres LISTEN/NOTIFY. It needs DatabaseURL.
	BroadcastURL string
	// AdminToken manages apps. Empty means generate one on first start and
	// keep it in DataDir.
	AdminToken string

	// MaxMessageBytes is the largest message, in compact JSON.
	MaxMessageBytes int
	// MaxBatchBytes is the largest body of a batch publish, as sent.
	MaxBatchBytes int
	// HistoryKeep is how many of each topic's newest messages are kept.
	HistoryKeep int
	// HistoryMaxAge is how long every message is kept regardless of HistoryKeep.
	HistoryMaxAge time.Duration
	// PruneInterval is how often history beyond retention is deleted.
	PruneInterval time.Duration
	// BufferSize is how many events a subscriber may fall behind before it
	// loses the oldest.
	BufferSize int
	// Heartbeat is how often idle streams get a ping; negative disables.
	Heartbeat time.Duration
	// WriteTimeout is how long one write to a stream, or a whole answer
	// from its start, may take before the client is cut off as too slow.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
	// ReadTimeout bounds reading a request's headers and, on every route
	// but the event streams, its body: a client that sends slower than
	// that is cut off instead of holding a connection for good.
	ReadTimeout time.Duration
	// MaxConnections caps the open connections of this node. At it the
	// listener closes the connection that has waited longest on its client
	// (idle, or its request body stalled) to make room, or else accepts no
	// more until one closes (new ones wait in the kernel's backlog); event
	// streams are refused earlier, with 503, so that a node full of
	// subscribers still answers publishes and probes. The default is
	// DefaultMaxConnections: the open-file limit less headroom for the
	// store, webhooks and logs.
	MaxConnections int
	// AppLimits are the per-app limits of an app that has none of its own
	// (PATCH /v1/apps/{app} sets those), enforced on each node apart:
	// streams and the publish rate per node, topics over the cluster. For
	// each, 0 is unlimited. Streams and topics default far above what one
	// node holds, the rate to unlimited, so they only part tenants that an
	// operator chose to part.
	AppLimits store.AppLimits
	// MaxMessageDepth is how deeply a message's arrays and objects may
	// nest: Go's encoding/json, which the SDK uses, refuses documents
	// deeper than 10,000 levels, and each envelope adds one or two.
	MaxMessageDepth int
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level
	// LogFormat is text or json.
	LogFormat string

	// TokenSecret signs browser tokens. Empty means a key derived from the
	// admin token, so every node of a cluster agrees with no new state.
	TokenSecret string
	// CORSOrigins are the exact origins (scheme://host[:port], lowercase)
	// browsers may call the API from; "*" admits any origin without
	// credentials. Empty means no CORS headers at all.
	CORSOrigins []string
	// TLSCert and TLSKey are PEM files; both set serves HTTPS (HTTP/2 and
	// HTTP/1.1), neither serves plain HTTP/1.1 and h2c.
	TLSCert, TLSKey string

	// WebhookAllowNets are networks webhooks may reach although they are
	// loopback, private, link-local and so on (127.0.0.0/8 for a receiver
	// on this host). Empty refuses every such address.
	WebhookAllowNets []netip.Prefix
	// WebhookTimeout bounds one webhook attempt.
	WebhookTimeout time.Duration
	// WebhookConcurrency is how many webhook attempts this node runs at
	// once. Negative means this node delivers none (others on the same
	// database do).
	WebhookConcurrency int
	// WebhookRetries are the delays before each retry of a failed webhook
	// delivery; a delivery gets 1+len attempts, then is dead.
	WebhookRetries []time.Duration
	// WebhookPollInterval is how often the dispatcher looks for due
	// deliveries when no publish on this node wakes it.
	WebhookPollInterval time.Duration
	// WebhookRetention is how long delivered deliveries are kept.
	WebhookRetention time.Duration
	// DeadLetterRetention is how long dead letters are kept: at least
	// MinDeadLetterRetention.
	DeadLetterRetention time.Duration
}

// MinDeadLetterRetention is the shortest --dead-letter-retention: a week
// gives a team time to notice a failing endpoint and redrive.
const MinDeadLetterRetention = 7 * 24 * time.Hour

// Defaults.
const (
	DefaultAddr    = "127.0.0.1:8080"
	DefaultDataDir = "./herald-data"
	// DefaultReadTimeout is --read-timeout's default: ample for a 64 KiB
	// message on a slow mobile link, short enough that a client sending
	// nothing gives its connection back soon.
	DefaultReadTimeout = httpapi.DefaultReadTimeout
	// DefaultMaxMessageDepth is --max-message-depth's default: far deeper
	// than real documents nest, far below what decoders refuse.
	DefaultMaxMessageDepth = 64
	// DefaultAppMaxStreams and DefaultAppMaxTopics are generous: a
	// single-tenant install and `herald bench` never meet them.
	DefaultAppMaxStreams = 100_000
	DefaultAppMaxTopics  = 100_000
	// DefaultAppMaxTriggers is generous too: each trigger is a webhook
	// delivery per message, so a thousand is already a lot of traffic.
	DefaultAppMaxTriggers = 1000
)

// ErrCommandLine wraps an error in the flags themselves (an unknown flag, a
// value of the wrong kind), which the flag package has already reported to
// Parse's usage writer, followed by the usage.
var ErrCommandLine = errors.New("command line")

// Parse reads the serve flags from args, with getenv supplying the HERALD_*
// variables. It returns flag.ErrHelp after printing usage for -h.
func Parse(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	SetUsage(fs, "herald serve [flags]")
	var errs []error
	str := func(p *string, name, def, help string) {
		if v := getenv(envName(name)); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, help+" ($"+envName(name)+")")
	}
	integer := func(p *int, name string, def int, help string) {
		if v := getenv(envName(name)); v != "" {
			if _, err := fmt.Sscan(v, &def); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a whole number", envName(name), v))
			}
		}
		fs.IntVar(p, name, def, help+" ($"+envName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, help string) {
		if v := getenv(envName(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration (like 30s or 5m)", envName(name), v))
			}
			def = d
		}
		fs.DurationVar(p, name, def, help+" ($"+envName(name)+")")
	}
	float := func(p *float64, name string, def float64, help string) {
		if v := getenv(envName(name)); v != "" {
			if _, err := fmt.Sscan(v, &def); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a number", envName(name), v))
			}
		}
		fs.Float64Var(p, name, def, help+" ($"+envName(name)+")")
	}
	var level string
	str(&c.Addr, "addr", DefaultAddr, "address to listen on")
	str(&c.DataDir, "data-dir", DefaultDataDir, "directory for the SQLite file and generated secrets")
	str(&c.DatabaseURL, "database-url", "", "postgres:// URL or key=value string for the Postgres store (cluster mode); empty uses embedded SQLite")
	dur(&c.DatabaseWriteTimeout, "database-write-timeout", postgres.DefaultWriteTimeout, "with --database-url: bound on committing publishes, and then on asking whether a commit whose connection was lost went through (past it: 503 commit_unknown)")
	str(&c.BroadcastURL, "broadcast-url", "", "nats:// URL (several comma-separated) carrying cluster notices between nodes instead of Postgres LISTEN/NOTIFY; needs --database-url")
	str(&c.AdminToken, "admin-token", "", "admin token; empty generates one on first start, kept in the data directory")
	integer(&c.MaxMessageBytes, "max-message-bytes", 64<<10, "largest message accepted, in compact JSON")
	integer(&c.MaxBatchBytes, "max-batch-bytes", httpapi.DefaultMaxBatchBytes, "largest batch publish body accepted (POST /v1/apps/{app}/messages), in bytes as sent")
	integer(&c.HistoryKeep, "history-keep", 1000, "messages of each topic always kept for replay")
	dur(&c.HistoryMaxAge, "history-max-age", 24*time.Hour, "messages younger than this are kept for replay")
	dur(&c.PruneInterval, "prune-interval", time.Minute, "how often history beyond retention is deleted")
	integer(&c.BufferSize, "buffer-size", 512, "events a subscriber may fall behind before it loses the oldest")
	dur(&c.Heartbeat, "heartbeat", 15*time.Second, "ping interval on idle streams; negative disables")
	dur(&c.WriteTimeout, "write-timeout", httpapi.DefaultWriteTimeout, "an answer, or one write to a stream, that the client takes longer than this to receive disconnects it")
	dur(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	dur(&c.ReadTimeout, "read-timeout", DefaultReadTimeout, "bound on reading a request's headers and body (event streams excepted)")
	integer(&c.MaxConnections, "max-connections", DefaultMaxConnections(), "open connections this node takes; event streams past it (less a reserve) get 503 (default: open-file limit less headroom)")
	integer(&c.MaxMessageDepth, "max-message-depth", DefaultMaxMessageDepth, "deepest nesting of arrays and objects a message may have")
	integer(&c.AppLimits.Streams, "app-max-streams", DefaultAppMaxStreams, "event streams one app may hold open on this node; 0 unlimited")
	integer(&c.AppLimits.Topics, "app-max-topics", DefaultAppMaxTopics, "topics one app may have; 0 unlimited")
	integer(&c.AppLimits.Triggers, "app-max-triggers", DefaultAppMaxTriggers, "webhook triggers one app may have, over all its topics; 0 unlimited")
	float(&c.AppLimits.PublishRate, "app-publish-rate", 0, "publishes per second one app may make on this node; 0 unlimited")
	integer(&c.AppLimits.PublishBurst, "app-publish-burst", 0, "publishes one app may make at once above its rate; 0 is one second's worth")
	str(&level, "log-level", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text", "text or json")
	str(&c.TokenSecret, "token-secret", "", "key (32+ characters) that signs browser tokens; empty derives one from the admin token")
	var origins string
	str(&origins, "cors-origins", "", "comma-separated origins browsers may call from (https://app.example.com), or * for any origin without credentials")
	str(&c.TLSCert, "tls-cert", "", "PEM certificate file: serve HTTPS with HTTP/2 (needs --tls-key)")
	str(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	var allowNets, retries string
	str(&allowNets, "webhook-allow-nets", "", "comma-separated CIDR networks webhooks may reach although private, loopback or link-local (127.0.0.0/8)")
	dur(&c.WebhookTimeout, "webhook-timeout", webhook.DefaultTimeout, "bound on one webhook attempt")
	integer(&c.WebhookConcurrency, "webhook-concurrency", webhook.DefaultConcurrency, "webhook attempts this node runs at once; negative: this node delivers none")
	str(&retries, "webhook-retry-schedule", webhook.DefaultRetrySchedule, "delays before each retry of a failed webhook, comma-separated; dead after the last")
	dur(&c.WebhookPollInterval, "webhook-poll-interval", webhook.DefaultPollInterval, "how often due webhook deliveries are looked for")
	dur(&c.WebhookRetention, "webhook-retention", 24*time.Hour, "how long delivered webhook deliveries are kept")
	dur(&c.DeadLetterRetention, "dead-letter-retention", MinDeadLetterRetention, "how long dead letters are kept (at least 168h)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", ErrCommandLine, err)
	}
	var err error
	if c.WebhookAllowNets, err = webhook.ParseNets(allowNets); err != nil {
		errs = append(errs, fmt.Errorf("--webhook-allow-nets: %w", err))
	}
	if c.WebhookRetries, err = webhook.ParseRetries(retries); err != nil {
		errs = append(errs, fmt.Errorf("--webhook-retry-schedule: %w", err))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	c.CORSOrigins, errs = parseOrigins(origins, errs)
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	}
	errs = append(errs, c.validate()...)
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func (c Config) validate() []error {
	var errs []error
	positive := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive", name))
		}
	}
	positive("max-message-bytes", int64(c.MaxMessageBytes))
	positive("max-batch-bytes", int64(c.MaxBatchBytes))
	positive("history-keep", int64(c.HistoryKeep))
	positive("history-max-age", int64(c.HistoryMaxAge))
	positive("prune-interval", int64(c.PruneInterval))
	positive("buffer-size", int64(c.BufferSize))
	positive("write-timeout", int64(c.WriteTimeout))
	positive("database-write-timeout", int64(c.DatabaseWriteTimeout))
	positive("shutdown-timeout", int64(c.ShutdownTimeout))
	positive("read-timeout", int64(c.ReadTimeout))
	positive("max-connections", int64(c.MaxConnections))
	positive("max-message-depth", int64(c.MaxMessageDepth))
	for name, v := range map[string]float64{
		"app-max-streams": float64(c.AppLimits.Streams), "app-max-topics": float64(c.AppLimits.Topics),
		"app-max-triggers": float64(c.AppLimits.Triggers), "app-publish-rate": c.AppLimits.PublishRate, "app-publish-burst": float64(c.AppLimits.PublishBurst),
	} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("--%s must be 0 (unlimited) or positive", name))
		}
	}
	if c.MaxMessageDepth > pubsub.MaxMaxDepth {
		errs = append(errs, fmt.Errorf("--max-message-depth must be at most %d: deeper messages could not be decoded by clients inside their envelopes", pubsub.MaxMaxDepth))
	}
	positive("webhook-timeout", int64(c.WebhookTimeout))
	positive("webhook-poll-interval", int64(c.WebhookPollInterval))
	positive("webhook-retention", int64(c.WebhookRetention))
	if c.WebhookConcurrency == 0 {
		errs = append(errs, errors.New("--webhook-concurrency must not be 0 (negative: this node delivers no webhooks)"))
	}
	if c.DeadLetterRetention < MinDeadLetterRetention {
		errs = append(errs, fmt.Errorf("--dead-letter-retention must be at least %s (7 days)", MinDeadLetterRetention))
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr must not be empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if c.DatabaseURL != "" {
		// What the Postgres store will accept, parsed by the same driver: a
		// postgres:// URL or a libpq key=value string. pgconn's errors
		// hide the password.
		if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("--database-url must be a postgres:// URL or a key=value string (host=… dbname=…): %w", err))
		}
	}
	if c.BroadcastURL != "" && c.DatabaseURL == "" {
		errs = append(errs, errors.New("--broadcast-url needs --database-url: NATS carries notices between nodes that share one Postgres store"))
	}
	if c.BroadcastURL != "" && !strings.HasPrefix(c.BroadcastURL, "nats://") && !strings.HasPrefix(c.BroadcastURL, "tls://") {
		errs = append(errs, errors.New("--broadcast-url must be a nats:// (or tls://) URL"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.AdminToken != "" && len(c.AdminToken) < auth.MinAdminTokenLength {
		errs = append(errs, fmt.Errorf("--admin-token must be at least %d characters (openssl rand -hex 32 makes one; empty generates one)", auth.MinAdminTokenLength))
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < 32 {
		errs = append(errs, errors.New("--token-secret must be at least 32 characters (openssl rand -hex 32 makes one)"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together: give both, or neither for plain HTTP"))
	}
	return errs
}

// parseOrigins reads --cors-origins. Browsers send Origin as
// scheme://host[:port] with nothing after it, and the server compares it
// byte for byte, so anything else (a path, a trailing slash) could never
// match and is refused here rather than failing silently in a browser.
func parseOrigins(s string, errs []error) ([]string, []error) {
	var out []string
	for o := range strings.SplitSeq(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			out = append(out, o)
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("--cors-origins %q: an origin is scheme://host[:port], like https://app.example.com", o))
		case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
			errs = append(errs, fmt.Errorf("--cors-origins %q: an origin has no path, query or trailing slash; write %s://%s", o, u.Scheme, u.Host))
		default:
			out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
		}
	}
	return out, errs
}

func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
