// Package natsbus is the NATS cluster.Transport: Herald nodes that share one
// Postgres store tell each other of commits through NATS core subjects
// instead of Postgres LISTEN/NOTIFY, so no notifying commit takes
// Postgres's database-wide NOTIFY lock, and each node hears only the topics
// it has subscribers for.
//
// # Sending
//
// Committed puts each event on a bounded queue and returns: the publish path
// never waits on NATS. One goroutine drains the queue in order and sends a
// notice per run of events of one topic, carrying them inline when they fit
// (InlineLimit, at most half the server's max_payload), else only the last
// id, which receivers read from history. Events come to Committed after
// their commit and in commit order per topic (the store's writer calls
// CommittedFunc so), and one goroutine sends them, so notices leave in
// commit order per topic. A full queue, a NATS outage or a node dying
// before its queue drained loses notices: the sequencer's periodic check
// (cluster.Config.CheckInterval) finds the messages in the store.
//
// # Subjects
//
// A topic's notices, messages and deletions, go to one subject:
// <prefix>.t.<app>.<topic>, the app id and topic name each escaped to one
// token (bytes other than A-Z a-z 0-9 and - become _ and two hex digits,
// so '.' is _2e and '_' itself _5f). The escape is one-to-one and never
// yields '.', '*', '>' or white space, so no topic name can reach another
// topic's subject, another app's, or a wildcard. A receiver also checks the
// app and topic a notice names against the subject it came on.
//
// # Receiving
//
// Watch subscribes to a topic's subject for its first local subscriber (and
// flushes, so the server has the interest before the node reads where the
// topic stands) and unsubscribes after its last. Every subscription feeds
// one channel drained by one goroutine, which hands notices to the
// sequencer and never waits for a subscriber.
//
// # Reconnect and liveness
//
// The client reconnects for ever, with jittered waits. Ready is an error
// while the connection is not up (pings every PingInterval find a silent
// server); after a reconnect, the client has subscribed again before the
// node asks the sequencer to read what every subscribed topic missed.
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
)

// Defaults for Config fields left at zero.
const (
	DefaultPrefix       = "herald"
	DefaultQueueSize    = 1 << 16
	DefaultInlineLimit  = 256 << 10
	DefaultStartTimeout = 5 * time.Second
	DefaultPingInterval = 2 * time.Second
	// inboxSize is how many received notices may wait for the receiving
	// goroutine; beyond it NATS drops them (a slow consumer), and the
	// periodic check finds their messages.
	inboxSize = 1 << 14
)

// Config configures a Transport. Zero values mean the documented default.
type Config struct {
	// URL is the NATS server, nats://host:port, or several separated by
	// commas. Required.
	URL string
	// Prefix is the first token of every subject, so that installs can
	// share a NATS server. 0 means DefaultPrefix.
	Prefix string
	// QueueSize bounds the events waiting to be sent. 0 means
	// DefaultQueueSize.
	QueueSize int
	// InlineLimit is the largest notice, in bytes, that carries its events
	// inline; it is lowered to half the server's max_payload. 0 means
	// DefaultInlineLimit.
	InlineLimit int
	// StartTimeout bounds the first connection. 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// PingInterval is how often the client pings the server; two missed
	// answers count as a lost connection. 0 means DefaultPingInterval.
	PingInterval time.Duration
	// ReconnectWait is the wait between reconnect attempts, before jitter.
	// 0 means 250ms.
	ReconnectWait time.Duration
	// Logger gets connection events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, errors.New("natsbus: URL is required")
	}
	if c.QueueSize < 0 || c.InlineLimit < 0 || c.StartTimeout < 0 || c.PingInterval < 0 || c.ReconnectWait < 0 {
		return c, errors.New("natsbus: durations and sizes must not be negative")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, ".*> \t\r\n") {
		return c, fmt.Errorf("natsbus: prefix %q must be one subject token", c.Prefix)
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.InlineLimit == 0 {
		c.InlineLimit = DefaultInlineLimit
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Notice kinds.
const (
	kindMessages = "m" // messages committed: inline, or up to Last in history
	kindDrop     = "d" // the topic was deleted
)

// notice is one message on a topic's subject.
type notice struct {
	Kind  string          `json:"k"`
	App   string          `json:"a"`
	Topic string          `json:"t"`
	Last  uint64          `json:"l,omitempty"`
	Msgs  json.RawMessage `json:"m,omitempty"`
}

// item is one entry of the send queue: an event, a deletion, or a marker
// whose channel is closed once everything before it was handed to NATS.
type item struct {
	ev     *broadcast.Event
	drop   *notice
	marker chan struct{}
}

// Transport is the NATS cluster.Transport (see the package doc).
type Transport struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	recv cluster.Receiver

	queue chan item
	inbox chan *nats.Msg

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	metrics metricSet
}

var _ cluster.Transport = (*Transport)(nil)

// New returns a transport that Start connects.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{
		cfg: cfg, log: cfg.Logger,
		queue:   make(chan item, cfg.QueueSize),
		inbox:   make(chan *nats.Msg, inboxSize),
		metrics: newMetricSet(),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Start implements cluster.Transport: it connects to NATS, failing with a
// message naming the URL when the server cannot be reached, and starts the
// sending and receiving goroutines.
func (t *Transport) Start(_ context.Context, r cluster.Receiver) error {
	t.recv = r
	nc, err := nats.Connect(t.cfg.URL,
		nats.Name("herald"),
		nats.Timeout(t.cfg.StartTimeout),
		nats.NoEcho(), // this node delivered its own commits already
		nats.MaxReconnects(-1),
		nats.ReconnectWait(t.cfg.ReconnectWait),
		nats.ReconnectJitter(t.cfg.ReconnectWait, t.cfg.ReconnectWait),
		nats.PingInterval(t.cfg.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			t.metrics.up.Set(0)
			t.log.Warn("nats: disconnected; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			t.metrics.reconnects.Inc()
			t.metrics.up.Set(1)
			t.log.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted())
			// The client subscribed again before calling this: read what
			// was missed meanwhile.
			t.recv.Resync()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				t.metrics.lost.Inc()
			}
			t.log.Warn("nats: asynchronous error", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("natsbus: connect to %s: %w (is a NATS server running there? --broadcast-url)", redact(t.cfg.URL), err)
	}
	t.nc = nc
	t.cfg.InlineLimit = int(min(int64(t.cfg.InlineLimit), nc.MaxPayload()/2))
	t.metrics.up.Set(1)
	t.wg.Go(t.send)
	t.wg.Go(t.receive)
	return nil
}

// redact drops user information from URLs for error messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// Close implements cluster.Transport: it hands what is queued to NATS
// (waiting at most two seconds), then closes the connection.
func (t *Transport) Close() error {
	t.once.Do(func() {
		if t.nc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = t.Flush(ctx) // best effort: the other nodes' checks find the rest
			cancel()
		}
		t.cancel()
		t.wg.Wait()
		if t.nc != nil {
			t.nc.Close()
		}
	})
	return nil
}

// Flush returns once every event and deletion queued before it has been
// sent to the NATS server (and the server answered a ping), or ctx ends;
// it waits ten seconds at most.
func (t *Transport) Flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m := make(chan struct{})
	select {
	case t.queue <- item{marker: m}:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.ctx.Done():
		return errors.New("natsbus: closed")
	}
	select {
	case <-m:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.ctx.Done():
		return errors.New("natsbus: closed")
	}
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsbus: flush: %w", err)
	}
	return nil
}

// Ready implements cluster.Transport.
func (t *Transport) Ready() error {
	if t.nc == nil {
		return errors.New("nats: not started")
	}
	if st := t.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats at %s is not connected (%s)", redact(t.cfg.URL), st)
	}
	return nil
}

// Watch implements cluster.Transport: it subscribes to the topic's subject
// and flushes, so that notices sent after it returns reach this node. While
// NATS is down the subscription waits in the client for the reconnect.
func (t *Transport) Watch(ctx context.Context, app, topic string) (func(), error) {
	sub, err := t.nc.ChanSubscribe(t.subject(app, topic), t.inbox)
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe: %w", err)
	}
	if t.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := t.nc.FlushWithContext(ctx); err != nil {
			t.log.Debug("nats: flush a subscription", "err", err)
		}
		cancel()
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Committed implements cluster.Transport: it queues ev without waiting. A
// full queue loses the notice (counted); the other nodes' checks find it.
func (t *Transport) Committed(ev *broadcast.Event) {
	select {
	case t.queue <- item{ev: ev}:
	default:
		t.metrics.lost.Inc()
	}
}

// Dropped implements cluster.Transport. The deletion is queued behind the
// topic's messages, waiting at most a second for room.
func (t *Transport) Dropped(ctx context.Context, app, topic string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	select {
	case t.queue <- item{drop: &notice{Kind: kindDrop, App: app, Topic: topic}}:
	case <-ctx.Done():
		t.metrics.lost.Inc()
		t.log.Warn("nats: queue full; other nodes learn of a deletion at their next check", "app", app, "topic", topic)
	case <-t.ctx.Done():
	}
}

// Collectors implements cluster.Transport.
func (t *Transport) Collectors() []prometheus.Collector { return t.metrics.all() }

// subject is (app, topic)'s subject.
func (t *Transport) subject(app, topic string) string {
	return t.cfg.Prefix + ".t." + escape(app) + "." + escape(topic)
}

// escape makes s one subject token, one-to-one: bytes other than A-Z a-z
// 0-9 and - become _ and two lower-case hex digits.
func escape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// send drains the queue until Close, one notice per run of one topic's
// events that are waiting together.
func (t *Transport) send() {
	var run []*broadcast.Event
	flush := func() {
		if len(run) > 0 {
			t.sendMessages(run)
			run = run[:0]
		}
	}
	for {
		var it item
		select {
		case <-t.ctx.Done():
			return
		case it = <-t.queue:
		}
		for {
			switch {
			case it.ev != nil:
				if len(run) > 0 && (run[0].App != it.ev.App || run[0].Topic != it.ev.Topic || len(run) >= 512) {
					flush()
				}
				run = append(run, it.ev)
			case it.drop != nil:
				flush()
				t.publish(it.drop)
			case it.marker != nil:
				flush()
				close(it.marker)
			}
			// Take what else is waiting now, without waiting for more.
			select {
			case it = <-t.queue:
				continue
			default:
			}
			break
		}
		flush()
	}
}

// sendMessages sends one notice for evs, events of one topic in id order:
// inline when it fits, else a pointer to the last id.
func (t *Transport) sendMessages(evs []*broadcast.Event) {
	last := evs[len(evs)-1]
	n := notice{Kind: kindMessages, App: last.App, Topic: last.Topic, Last: last.ID}
	size := 0
	for _, ev := range evs {
		size += len(ev.Message) + 40
	}
	if size < t.cfg.InlineLimit {
		inline := make([]cluster.WireEvent, len(evs))
		for i, ev := range evs {
			inline[i] = cluster.WireEventOf(ev.ID, ev.PublishedAt, ev.Message)
		}
		raw, err := cluster.MarshalJSON(inline)
		if err == nil {
			n.Msgs = raw
		}
	}
	t.publish(&n)
}

func (t *Transport) publish(n *notice) {
	b, err := cluster.MarshalJSON(n)
	if err == nil {
		err = t.nc.Publish(t.subject(n.App, n.Topic), b)
	}
	if err != nil {
		t.metrics.lost.Inc()
		t.log.Debug("nats: send a notice; the other nodes' checks will find it", "app", n.App, "topic", n.Topic, "err", err)
		return
	}
	t.metrics.sent.Inc()
}

// receive hands received notices to the sequencer until Close.
func (t *Transport) receive() {
	for {
		select {
		case <-t.ctx.Done():
			return
		case m := <-t.inbox:
			t.handle(m)
		}
	}
}

func (t *Transport) handle(m *nats.Msg) {
	t.metrics.received.Inc()
	var n notice
	if err := json.Unmarshal(m.Data, &n); err != nil || n.App == "" || n.Topic == "" || m.Subject != t.subject(n.App, n.Topic) {
		// Not a notice, or one naming another topic than its subject's:
		// whatever sent it, nothing of it reaches a subscriber.
		t.metrics.bad.Inc()
		return
	}
	switch n.Kind {
	case kindDrop:
		t.recv.Dropped(n.App, n.Topic)
	case kindMessages:
		if err := cluster.HandOver(t.recv, n.App, n.Topic, n.Last, n.Msgs); err != nil {
			t.metrics.bad.Inc()
		}
	default:
		t.metrics.bad.Inc()
	}
}

// metricSet is the transport's own metrics.
type metricSet struct {
	reconnects prometheus.Counter
	up         prometheus.Gauge
	sent       prometheus.Counter
	received   prometheus.Counter
	lost       prometheus.Counter
	bad        prometheus.Counter
}

func newMetricSet() metricSet {
	return metricSet{
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_nats_reconnects_total",
			Help: "Times the NATS connection was re-established after it was lost.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_nats_up",
			Help: "1 while the NATS connection is up, else 0.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_nats_notices_sent_total",
			Help: "Notices handed to NATS (one per run of a topic's messages, or a deletion).",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_nats_notices_received_total",
			Help: "Notices received from other nodes.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_nats_notices_lost_total",
			Help: "Notices not sent (queue full, NATS down) or dropped on receipt (slow consumer); the periodic check finds their messages.",
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_nats_notices_invalid_total",
			Help: "Received notices that could not be decoded or named another topic than their subject's, ignored.",
		}),
	}
}

func (m metricSet) all() []prometheus.Collector {
	return []prometheus.Collector{m.reconnects, m.up, m.sent, m.received, m.lost, m.bad}
}
