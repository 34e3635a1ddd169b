// Package cluster is the broadcaster of a Herald cluster, independent of
// how nodes reach each other. It is three parts, as in centrifuge's Broker,
// BrokerEventHandler and Hub:
//
//   - a Transport carries notices between nodes (pgnotify: Postgres
//     LISTEN/NOTIFY; natsbus: NATS); it knows nothing of order;
//   - the sequencer, here, is what a node does with what arrives: for each
//     topic with local subscribers it hands events on strictly in id order,
//     once each, and reads what it missed from history through the store;
//   - local fan-out is a broadcast.Memory.
//
// A new transport brings only the first part.
//
// # Order and exactly once
//
// For each topic with local subscribers a node remembers the id of the last
// event it handed them. Events come from two places, this node's own commits
// (Publish) and other nodes' notices, and can arrive out of order. The
// sequencer delivers only id last+1, holds later ones, and reads a gap from
// history if its notice has not come within Config.GapGrace; anything at or
// below last is a duplicate and dropped, which is
// why a node's own publish is delivered once. When history no longer holds
// a gap (retention pruned it), the later events are delivered anyway and the
// SSE stream, which watches ids, tells the subscriber what it lost.
//
// # Lost notices
//
// A transport that may lose notices (NATS core is at-most-once; a node can
// die between its commit and its notice) is backed by a periodic check:
// every Config.CheckInterval the node reads each locally subscribed topic's
// last id from the store and fills what it has not delivered. A reconnected
// transport asks for the same catch-up at once (Receiver.Resync). The check
// also finds deletions this node never heard of.
//
// # Topic lives
//
// A topic's name can be deleted and created again. The sequencer remembers
// which life (CreatedAt) its subscribers follow, so a late notice of an
// earlier life's deletion does not end a new life's streams, and a check or
// catch-up that finds another life ends the old one's.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/store"
)

// Defaults for Config fields left at zero.
const (
	// DefaultFillBatch is how many messages one history read fetches.
	DefaultFillBatch = 256
	// DefaultGapGrace is how long a gap waits for its notice before it is
	// read from history: notices of commits made a moment apart on two
	// nodes often arrive after the later commit.
	DefaultGapGrace = 50 * time.Millisecond
	// DefaultMaxBackoff caps the wait between history reads that fail.
	DefaultMaxBackoff = 5 * time.Second
	// fillConcurrency bounds the history reads running at once, so a
	// reconnect with thousands of subscribed topics does not open thousands
	// of queries.
	fillConcurrency = 4
)

// History is what the sequencer reads from the store: a topic's head when
// its first local subscriber arrives (and at each check), and the messages
// a pointer or a gap names. Both stores satisfy it.
type History interface {
	GetTopic(ctx context.Context, appID, name string) (store.Topic, error)
	History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error)
}

// HeadsReader is what a History may add: many topics' heads in one read.
// The periodic check uses it when History has it (the Postgres store does),
// so that checking a node's subscribed topics is a read per 500 topics
// rather than per topic. Topics that do not exist are left out of the
// result.
type HeadsReader interface {
	TopicHeads(ctx context.Context, appIDs, names []string) ([]store.Topic, error)
}

// Transport carries notices between the nodes of a cluster. It is safe for
// concurrent use. Every method but Start and Close must return promptly:
// Committed runs on the store's writer, the others on request paths.
type Transport interface {
	// Start begins receiving: notices from other nodes (and, harmlessly,
	// this node's own) go to r from now until Close. It returns once the
	// transport is live, or an error saying why it cannot be; ctx bounds
	// only the start.
	Start(ctx context.Context, r Receiver) error
	// Watch says this node has local subscribers of (app, topic) until the
	// returned function is called. It returns once notices of the topic
	// sent after it will reach the Receiver, as far as the transport can
	// tell (a transport that is down says so through Ready and Resync
	// later). A transport that hears every topic anyway does nothing.
	Watch(ctx context.Context, app, topic string) (unwatch func(), err error)
	// Committed is called with each message this node committed, after the
	// commit, in commit order per topic. It must never block: a transport
	// that sends after commit queues it. A transport whose notice is part of
	// the publish transaction (pgnotify) ignores it.
	Committed(ev *broadcast.Event)
	// Dropped tells the other nodes that (app, topic) was deleted; it is
	// called after the deletion committed. It may wait for the send, within
	// reason, and logs a failure itself: the periodic check and every
	// reconnect's catch-up find a deletion that was not heard.
	Dropped(ctx context.Context, app, topic string)
	// Ready reports whether the transport is hearing other nodes now.
	Ready() error
	// Collectors returns the transport's metrics.
	Collectors() []prometheus.Collector
	// Close stops the transport and waits for its goroutines.
	Close() error
}

// Receiver is what a node does with notices: the sequencer. Its methods
// never block on a subscriber; a transport may call them from its receiving
// goroutine.
type Receiver interface {
	// Watching reports whether the node has local subscribers of (app,
	// topic), so that a transport that hears every topic can skip
	// decoding the others.
	Watching(app, topic string) bool
	// Messages hands over committed events of one topic, ids increasing.
	Messages(app, topic string, evs []*broadcast.Event)
	// Pointer says messages of (app, topic) up to id last committed; the
	// node reads what it has not delivered from history.
	Pointer(app, topic string, last uint64)
	// Dropped says another node deleted (app, topic).
	Dropped(app, topic string)
	// Resync says the transport may have missed notices (it reconnected):
	// every locally subscribed topic reads what it missed from history.
	Resync()
}

// Config configures a Broadcaster. Zero values mean the documented default.
type Config struct {
	// Transport carries notices between nodes. Required.
	Transport Transport
	// History resolves pointers and gaps (the store). Required.
	History History
	// BufferSize is how many events a local subscriber may fall behind
	// (see broadcast.MemoryOptions).
	BufferSize int
	// CheckInterval is how often each locally subscribed topic's last id is
	// read from the store, to find messages whose notice was lost. 0 means
	// no check, for a transport that cannot lose a committed notice.
	CheckInterval time.Duration
	// FillBatch is how many messages one history read fetches.
	// 0 means DefaultFillBatch.
	FillBatch int
	// GapGrace is how long a gap (an id held while an earlier one has not
	// arrived) may wait for its notice before it is read from history.
	// 0 means DefaultGapGrace; negative reads at once.
	GapGrace time.Duration
	// MaxBackoff caps the wait between failed history reads.
	// 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger gets history read failures; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Transport == nil || c.History == nil {
		return c, errors.New("cluster: Transport and History are required")
	}
	if c.CheckInterval < 0 || c.FillBatch < 0 || c.MaxBackoff < 0 {
		return c, errors.New("cluster: durations and sizes must not be negative")
	}
	if c.FillBatch == 0 {
		c.FillBatch = DefaultFillBatch
	}
	if c.GapGrace == 0 {
		c.GapGrace = DefaultGapGrace
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Broadcaster is the cluster's broadcast.Broadcaster (see the package doc).
// Open starts it and Close ends it.
type Broadcaster struct {
	cfg Config
	log *slog.Logger
	tr  Transport
	mem *broadcast.Memory

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

	historyReads prometheus.Counter
}

var (
	_ broadcast.Service = (*Broadcaster)(nil)
	_ Receiver          = (*Broadcaster)(nil)
)

type topicKey struct{ app, topic string }

// Open starts cfg.Transport with the sequencer as its receiver and, if
// configured, the periodic check. ctx bounds only the start.
func Open(ctx context.Context, cfg Config) (*Broadcaster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mem, err := broadcast.NewMemory(broadcast.MemoryOptions{BufferSize: cfg.BufferSize})
	if err != nil {
		return nil, err
	}
	b := &Broadcaster{
		cfg: cfg, log: cfg.Logger, tr: cfg.Transport, mem: mem,
		topics: make(map[topicKey]*topicState),
		fills:  make(chan struct{}, fillConcurrency),
		historyReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_cluster_history_reads_total",
			Help: "History reads made to resolve pointer notices, fill gaps, catch up after a reconnect or check topics' last ids.",
		}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.tr.Start(ctx, b); err != nil {
		b.cancel()
		return nil, err
	}
	if cfg.CheckInterval > 0 {
		b.wg.Go(b.checkLoop)
	}
	return b, nil
}

// Close stops the transport, then waits for the broadcaster's goroutines.
// Local subscriptions end with their own contexts, as always.
func (b *Broadcaster) Close() error {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil
	}
	b.closed = true
	b.closeMu.Unlock()
	err := b.tr.Close()
	b.cancel()
	b.wg.Wait()
	if err != nil {
		return fmt.Errorf("cluster: close transport: %w", err)
	}
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

// Ready reports whether the transport hears other nodes: a node that may be
// missing their messages should not get new subscribers from a load
// balancer.
func (b *Broadcaster) Ready() error { return b.tr.Ready() }

// Collectors returns the broadcaster's and its transport's metrics, for the
// server's registry.
func (b *Broadcaster) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{b.historyReads}, b.tr.Collectors()...)
}

// Subscribe implements broadcast.Broadcaster. The first local subscriber of a
// topic has the transport watch it, then reads the topic's last id, which is
// where delivery starts; that read fails with a wrapped store.ErrNotFound
// for a topic that does not exist and with broadcast.ErrUnavailable when the
// store cannot be reached.
func (b *Broadcaster) Subscribe(ctx context.Context, app, topic string, wake func()) (*broadcast.Subscription, error) {
	if b.ctx.Err() != nil {
		return nil, broadcast.ErrClosed
	}
	ts := b.hold(app, topic)
	if err := b.watch(ctx, ts); err != nil {
		b.release(ts)
		return nil, err
	}
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
// hands ev to local subscribers, in id order with events from other nodes,
// and to the transport for the others.
func (b *Broadcaster) Publish(_ context.Context, ev *broadcast.Event) {
	if ts := b.lookup(ev.App, ev.Topic); ts != nil {
		b.offer(ts, ev)
	}
	b.tr.Committed(ev)
}

// DropTopic implements broadcast.Broadcaster: local subscribers end at once,
// and other nodes' end when they hear the transport's notice, or at their
// next check or catch-up if it is lost.
func (b *Broadcaster) DropTopic(ctx context.Context, app, topic string) {
	b.dropLocal(app, topic)
	b.tr.Dropped(ctx, app, topic)
}

// Watching implements Receiver.
func (b *Broadcaster) Watching(app, topic string) bool { return b.lookup(app, topic) != nil }

// Messages implements Receiver.
func (b *Broadcaster) Messages(app, topic string, evs []*broadcast.Event) {
	ts := b.lookup(app, topic)
	if ts == nil {
		return
	}
	for _, ev := range evs {
		if ev.App == app && ev.Topic == topic {
			b.offer(ts, ev)
		}
	}
}

// Pointer implements Receiver.
func (b *Broadcaster) Pointer(app, topic string, last uint64) {
	if ts := b.lookup(app, topic); ts != nil {
		b.want(ts, last)
	}
}

// Dropped implements Receiver.
func (b *Broadcaster) Dropped(app, topic string) { b.remoteDrop(app, topic) }

// Resync implements Receiver.
func (b *Broadcaster) Resync() { b.catchUp() }

// Backoff is the wait before retry n: exponential from 250 ms, capped, with
// jitter so that nodes cut off together do not return in step. The first
// wait is under half a second. Transports use it for reconnects too.
func Backoff(n int, limit time.Duration) time.Duration {
	d := 250 * time.Millisecond << min(n, 16)
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}
