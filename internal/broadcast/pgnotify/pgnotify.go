package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
)

// Defaults for Config fields left at zero.
const (
	DefaultCheckInterval = 2 * time.Second
	DefaultStartTimeout  = 5 * time.Second
	DefaultMaxBackoff    = 5 * time.Second
)

// Config configures a Transport. Zero values mean the documented default.
type Config struct {
	// DatabaseURL is where the listener connects: the same database the
	// store uses, directly or through a session-pooling proxy.
	DatabaseURL string
	// Pool sends the pings and drop notifications (the store's pool).
	Pool *pgxpool.Pool
	// Notifier is this node's notifier, the one the store's publish
	// transactions use; its node id tells own notifications apart.
	Notifier *Notifier
	// CheckInterval is how often the node pings itself through Postgres.
	// 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// DeafAfter is how long the listener may hear no echo before it is
	// reopened. 0 means three check intervals.
	DeafAfter time.Duration
	// StartTimeout bounds how long Start waits for the first echo.
	// 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxBackoff caps the wait between reconnect attempts.
	// 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger gets connection events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DatabaseURL == "" || c.Pool == nil || c.Notifier == nil {
		return c, errors.New("pgnotify: DatabaseURL, Pool and Notifier are required")
	}
	if c.CheckInterval < 0 || c.DeafAfter < 0 || c.StartTimeout < 0 || c.MaxBackoff < 0 {
		return c, errors.New("pgnotify: durations must not be negative")
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.DeafAfter == 0 {
		c.DeafAfter = 3 * c.CheckInterval
	}
	if c.DeafAfter <= c.CheckInterval {
		return c, fmt.Errorf("pgnotify: DeafAfter %v must be longer than CheckInterval %v", c.DeafAfter, c.CheckInterval)
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Transport is the LISTEN/NOTIFY cluster.Transport (see the package doc).
// cluster.Open starts it and the broadcaster's Close ends it.
type Transport struct {
	cfg     Config
	log     *slog.Logger
	connCfg *pgx.ConnConfig
	recv    cluster.Receiver // set by Start

	// ctx ends at Close; every goroutine of the transport watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	heard    atomic.Bool  // an echo was heard on the current connection
	lastEcho atomic.Int64 // when, in Unix nanoseconds
	pingSeq  atomic.Uint64

	metrics metricSet
}

var _ cluster.Transport = (*Transport)(nil)

// New returns a transport that Start connects.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: parse database URL: %w", err)
	}
	// Named so that operators (and tests) can find it in pg_stat_activity.
	connCfg.RuntimeParams["application_name"] = "herald-listener"
	t := &Transport{cfg: cfg, log: cfg.Logger, connCfg: connCfg, metrics: newMetricSet()}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Start implements cluster.Transport: it connects the listener, checks that
// it hears this node's own notification (which LISTEN through a
// transaction-pooling proxy never does), and starts listening.
func (t *Transport) Start(ctx context.Context, r cluster.Receiver) error {
	t.recv = r
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	if err := t.awaitFirstEcho(ctx, conn); err != nil {
		closeConn(conn)
		return err
	}
	t.wg.Go(func() { t.run(conn) })
	t.wg.Go(t.pingLoop)
	return nil
}

// Close implements cluster.Transport: it stops listening and waits for the
// transport's goroutines.
func (t *Transport) Close() error {
	t.cancel()
	t.wg.Wait()
	return nil
}

// Ready implements cluster.Transport: the listener is connected and has
// heard this node's own ping since it last connected.
func (t *Transport) Ready() error {
	if !t.heard.Load() {
		return errors.New("postgres listener is not hearing notifications")
	}
	return nil
}

// NodeID is this node's name in notifications.
func (t *Transport) NodeID() string { return t.cfg.Notifier.NodeID() }

// Watch implements cluster.Transport. The listener hears every topic on the
// one channel, so there is nothing to do.
func (t *Transport) Watch(context.Context, string, string) (func(), error) {
	return func() {}, nil
}

// Committed implements cluster.Transport. Other nodes learn of a commit from
// the notification its transaction sent (Notifier.QueueNotify), so there is
// nothing to send after it.
func (t *Transport) Committed(*broadcast.Event) {}

// Dropped implements cluster.Transport. The notification is sent after the
// deletion committed, so a node that dies in between leaves other nodes'
// streams open on a topic that gets no messages; their next reconnect's
// catch-up ends them.
func (t *Transport) Dropped(ctx context.Context, app, topic string) {
	p, err := t.cfg.Notifier.payload(envelope{Kind: kindDrop, App: app, Topic: topic})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, err = t.cfg.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, p)
	}
	if err != nil {
		t.log.Warn("tell other nodes a topic was deleted", "app", app, "topic", topic, "err", err)
	}
}

// Collectors implements cluster.Transport.
func (t *Transport) Collectors() []prometheus.Collector { return t.metrics.all() }

// metricSet is the transport's own metrics.
type metricSet struct {
	reconnects prometheus.Counter
	listenerUp prometheus.Gauge
	queueUsage prometheus.Gauge
	received   prometheus.Counter
	bad        prometheus.Counter
}

func newMetricSet() metricSet {
	return metricSet{
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_pg_listener_reconnects_total",
			Help: "Times the Postgres listener connection was reopened after it was lost or went deaf.",
		}),
		listenerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_pg_listener_up",
			Help: "1 while the Postgres listener is connected and hears its own pings, else 0.",
		}),
		queueUsage: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_pg_notification_queue_usage",
			Help: "Fraction of Postgres's notification queue in use (pg_notification_queue_usage()); at 1 every notifying commit fails.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_pg_notifications_received_total",
			Help: "Notifications the listener received, from every node.",
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_pg_notifications_invalid_total",
			Help: "Notifications on the herald channel that could not be decoded and were ignored.",
		}),
	}
}

func (m metricSet) all() []prometheus.Collector {
	return []prometheus.Collector{m.reconnects, m.listenerUp, m.queueUsage, m.received, m.bad}
}
