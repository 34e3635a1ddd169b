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
	"github.com/heraldhq/herald/internal/store"
)

// Defaults for Config fields left at zero.
const (
	DefaultCheckInterval = 2 * time.Second
	DefaultStartTimeout  = 5 * time.Second
	DefaultMaxBackoff    = 5 * time.Second
	// DefaultFillBatch is how many messages one history read fetches.
	DefaultFillBatch = 256
	// fillConcurrency bounds the history reads running at once, so a
	// reconnect with thousands of subscribed topics does not open thousands
	// of queries.
	fillConcurrency = 4
)

// History is what the broadcaster reads from the store: a topic's head when
// its first local subscriber arrives, and the messages a pointer or a gap
// names. The Postgres store satisfies it.
type History interface {
	GetTopic(ctx context.Context, appID, name string) (store.Topic, error)
	History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error)
}

// Config configures a Broadcaster. Zero values mean the documented default.
type Config struct {
	// DatabaseURL is where the listener connects: the same database the
	// store uses, directly or through a session-pooling proxy.
	DatabaseURL string
	// Pool sends the pings and drop notifications (the store's pool).
	Pool *pgxpool.Pool
	// History resolves pointers and gaps (the store).
	History History
	// Notifier is this node's notifier, the one the store's publish
	// transactions use; its node id tells own notifications apart.
	Notifier *Notifier
	// BufferSize is how many events a local subscriber may fall behind
	// (see broadcast.MemoryOptions).
	BufferSize int
	// CheckInterval is how often the node pings itself through Postgres.
	// 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// DeafAfter is how long the listener may hear no echo before it is
	// reopened. 0 means three check intervals.
	DeafAfter time.Duration
	// StartTimeout bounds how long Open waits for the first echo.
	// 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxBackoff caps the wait between reconnect attempts.
	// 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// FillBatch is how many messages one history read fetches.
	// 0 means DefaultFillBatch.
	FillBatch int
	// Logger gets connection events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DatabaseURL == "" || c.Pool == nil || c.History == nil || c.Notifier == nil {
		return c, errors.New("pgnotify: DatabaseURL, Pool, History and Notifier are required")
	}
	if c.CheckInterval < 0 || c.DeafAfter < 0 || c.StartTimeout < 0 || c.MaxBackoff < 0 || c.FillBatch < 0 {
		return c, errors.New("pgnotify: durations and sizes must not be negative")
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
	if c.FillBatch == 0 {
		c.FillBatch = DefaultFillBatch
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Broadcaster is the cluster Broadcaster (see the package doc). Open starts
// its goroutines and Close ends them.
type Broadcaster struct {
	cfg     Config
	log     *slog.Logger
	mem     *broadcast.Memory
	connCfg *pgx.ConnConfig

	mu     sync.Mutex
	topics map[topicKey]*topicState // topics with local subscribers

	// ctx ends at Close; every goroutine of the broadcaster watches it.
	ctx    context.Context
	cancel context.CancelFunc
	// closeMu orders starting a goroutine against Close's wait for them.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
	wg      sync.WaitGroup

	fills chan struct{} // semaphore of running history reads

	heard    atomic.Bool  // an echo was heard on the current connection
	lastEcho atomic.Int64 // when, in Unix nanoseconds
	pingSeq  atomic.Uint64

	metrics metricSet
}

var _ broadcast.Broadcaster = (*Broadcaster)(nil)

type topicKey struct{ app, topic string }

// Open connects the listener, checks that it hears this node's own
// notification (which LISTEN through a transaction-pooling proxy never
// does), and starts listening. ctx bounds only the start.
func Open(ctx context.Context, cfg Config) (*Broadcaster, error) {
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
	mem, err := broadcast.NewMemory(broadcast.MemoryOptions{BufferSize: cfg.BufferSize})
	if err != nil {
		return nil, err
	}
	b := &Broadcaster{
		cfg: cfg, log: cfg.Logger, mem: mem, connCfg: connCfg,
		topics:  make(map[topicKey]*topicState),
		fills:   make(chan struct{}, fillConcurrency),
		metrics: newMetricSet(),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())

	conn, err := b.connect(ctx)
	if err != nil {
		b.cancel()
		return nil, err
	}
	if err := b.awaitFirstEcho(ctx, conn); err != nil {
		b.cancel()
		closeConn(conn)
		return nil, err
	}
	b.wg.Go(func() { b.run(conn) })
	b.wg.Go(b.pingLoop)
	return b, nil
}

// Close stops listening and waits for the broadcaster's goroutines. Local
// subscriptions end with their own contexts, as always.
func (b *Broadcaster) Close() error {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil
	}
	b.closed = true
	b.closeMu.Unlock()
	b.cancel()
	b.wg.Wait()
	return nil
}

// goOwned runs fn in a goroutine owned by the broadcaster, unless it is
// closing.
func (b *Broadcaster) goOwned(fn func()) bool {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return false
	}
	b.wg.Go(fn)
	return true
}

// Ready reports whether the listener is connected and has heard this node's
// own ping since it last connected: a node that may be missing other nodes'
// messages should not get new subscribers from a load balancer.
func (b *Broadcaster) Ready() error {
	if !b.heard.Load() {
		return errors.New("postgres listener is not hearing notifications")
	}
	return nil
}

// NodeID is this node's name in notifications.
func (b *Broadcaster) NodeID() string { return b.cfg.Notifier.NodeID() }

// Subscribe implements broadcast.Broadcaster. The first local subscriber of a
// topic reads the topic's last id, which is where delivery starts; that read
// fails with a wrapped store.ErrNotFound for a topic that does not exist and
// with broadcast.ErrUnavailable when the database cannot be reached.
func (b *Broadcaster) Subscribe(ctx context.Context, app, topic string, wake chan<- struct{}) (*broadcast.Subscription, error) {
	if b.ctx.Err() != nil {
		return nil, broadcast.ErrClosed
	}
	ts := b.hold(app, topic)
	if err := b.prime(ctx, ts); err != nil {
		b.release(ts)
		return nil, err
	}
	sub, err := b.mem.Subscribe(ctx, app, topic, wake)
	if err != nil {
		b.release(ts)
		return nil, err
	}
	context.AfterFunc(ctx, func() { b.release(ts) })
	return sub, nil
}

// Publish implements broadcast.Broadcaster for this node's own commits: it
// hands ev to local subscribers, in id order with events from other nodes.
// Other nodes learn of ev from the notification its transaction sent.
func (b *Broadcaster) Publish(_ context.Context, ev *broadcast.Event) {
	if ts := b.lookup(ev.App, ev.Topic); ts != nil {
		b.offer(ts, ev)
	}
}

// DropTopic implements broadcast.Broadcaster: local subscribers end at once,
// and other nodes' end when they hear the notification. It is sent after the
// deletion committed, so a node that dies in between leaves other nodes'
// streams open on a topic that gets no messages; their next reconnect, or
// this broadcaster's catch-up after a listener reconnect, ends them.
func (b *Broadcaster) DropTopic(ctx context.Context, app, topic string) {
	b.dropLocal(app, topic)
	p, err := b.cfg.Notifier.payload(envelope{Kind: kindDrop, App: app, Topic: topic})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, err = b.cfg.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, p)
	}
	if err != nil {
		b.log.Warn("tell other nodes a topic was deleted", "app", app, "topic", topic, "err", err)
	}
}

// Collectors returns the broadcaster's metrics, for the server's registry.
func (b *Broadcaster) Collectors() []prometheus.Collector { return b.metrics.all() }

// metricSet is the broadcaster's own metrics.
type metricSet struct {
	reconnects  prometheus.Counter
	listenerUp  prometheus.Gauge
	queueUsage  prometheus.Gauge
	received    prometheus.Counter
	historyRead prometheus.Counter
	bad         prometheus.Counter
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
		historyRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_pg_history_reads_total",
			Help: "History reads made to resolve pointer notifications, fill gaps or catch up after a reconnect.",
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_pg_notifications_invalid_total",
			Help: "Notifications on the herald channel that could not be decoded and were ignored.",
		}),
	}
}

func (m metricSet) all() []prometheus.Collector {
	return []prometheus.Collector{m.reconnects, m.listenerUp, m.queueUsage, m.received, m.historyRead, m.bad}
}
