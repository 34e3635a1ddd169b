package sse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
)

// Defaults for Options fields left at zero.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultRetry        = 2 * time.Second
	DefaultReplayBatch  = 500
)

// ErrBadLastEventID means the Last-Event-ID is not one this server issued.
var ErrBadLastEventID = errors.New("invalid Last-Event-ID")

// ErrShuttingDown means the handler is closing and takes no new streams.
var ErrShuttingDown = errors.New("server shutting down")

// Subscriber is the part of broadcast.Broadcaster a stream uses.
type Subscriber interface {
	Subscribe(ctx context.Context, app, topic string, wake chan<- struct{}) (*broadcast.Subscription, error)
}

// History is what a stream reads from storage: a topic's head, and the
// messages after a position. store.Store satisfies it.
type History interface {
	GetTopic(ctx context.Context, appID, name string) (store.Topic, error)
	History(ctx context.Context, appID, topic string, after uint64, limit int) ([]store.Message, error)
}

// Options configures a Handler. Zero values mean the documented default.
type Options struct {
	// Heartbeat is how often an idle stream gets a ": ping" comment.
	// 0 means DefaultHeartbeat; negative disables heartbeats.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client; a client that does not
	// take a write within it is disconnected. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Retry is the reconnect delay sent to clients once per stream.
	// 0 means DefaultRetry.
	Retry time.Duration
	// ReplayBatch is how many history messages one replay read fetches.
	// 0 means DefaultReplayBatch.
	ReplayBatch int
	// Metrics receives stream counters. Nil means metrics.New(), unexported.
	Metrics *metrics.Metrics
	// Logger logs slow-consumer disconnects. Nil discards.
	Logger *slog.Logger
	// Stats, if not nil, counts each app's live streams, lag episodes and
	// slow disconnects (the dashboard's health view).
	Stats Stats
}

// Stats is what a Handler reports per app. Its methods must not block.
type Stats interface {
	Connections(app string, delta int)
	Lagged(app, topic string, missed uint64)
	SlowDisconnect(app string)
}

// Handler serves text/event-stream responses. It is safe for concurrent use.
//
// # Lifecycle
//
// Every stream ends when its request's context ends, when all its topics are
// dropped, when a write misses its deadline, or when Close is called. Close
// ends every stream and waits for their handlers to return, which is what
// lets http.Server.Shutdown finish: SSE streams never go idle on their own.
type Handler struct {
	subscriber Subscriber
	history    History
	opts       Options
	metrics    *metrics.Metrics
	log        *slog.Logger

	closeCtx  context.Context // ended by Close; every stream's context derives from it
	cancelAll context.CancelFunc

	mu      sync.Mutex
	closed  bool             // guarded by mu; Close was called
	streams sync.WaitGroup   // Add guarded by mu (so none follows Wait)
	counts  map[topicRef]int // guarded by mu; live subscriptions per topic
	keys    keyWatch         // guarded by mu; streams by the key that opened them
	_       struct{}         // keeps the field block above readable
}

type topicRef struct{ app, topic string }

// New returns a Handler reading live events from sub and history from hist.
func New(sub Subscriber, hist History, opts Options) *Handler {
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultRetry
	}
	if opts.ReplayBatch <= 0 {
		opts.ReplayBatch = DefaultReplayBatch
	}
	m := opts.Metrics
	if m == nil {
		m = metrics.New()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{
		subscriber: sub, history: hist, opts: opts, metrics: m, log: log,
		closeCtx: ctx, cancelAll: cancel, counts: make(map[topicRef]int),
	}
}

// Close ends every stream and waits until their handlers have returned or
// ctx ends. New streams are refused with ErrShuttingDown. It is safe to call
// more than once.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancelAll()
	done := make(chan struct{})
	go func() { h.streams.Wait(); close(done) }() // ends when the last stream does
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close streams: %w", ctx.Err())
	}
}

// Subscribers returns how many streams on this node follow (app, topic).
func (h *Handler) Subscribers(app, topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[topicRef{app, topic}]
}

// enter admits a stream unless the handler is closing.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.streams.Add(1)
	return true
}

func (h *Handler) leave() { h.streams.Done() }

// count adds delta to the live subscriber count of each topic. A stream is
// counted once it is subscribed and knows its positions, so a count that
// includes it means events published from then on reach it.
func (h *Handler) count(app string, topics []string, delta int) {
	if h.opts.Stats != nil {
		h.opts.Stats.Connections(app, delta)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range topics {
		k := topicRef{app, t}
		if h.counts[k] += delta; h.counts[k] <= 0 {
			delete(h.counts, k)
		}
	}
}

// Request names what a stream follows.
type Request struct {
	App string
	// Topics are the stream's topics; names must already be valid.
	Topics []string
	// LastEventID is the client's Last-Event-ID, empty on a first connect.
	LastEventID string
	// Until, when set, is when the stream must end: the expiry of the
	// browser token that opened it, so a token outlives its ttl on no open
	// stream. The stream then sends "event: token_expired" and ends
	// cleanly. The zero time means no deadline.
	Until time.Time
	// ReleaseFunc, if not nil, is called once when the stream ends, or
	// before Serve returns an error: the caller holds a slot (a limit on
	// streams) for as long as the stream lives, which on a hijacked
	// connection is longer than the request.
	ReleaseFunc func()
	// KeyID is the app key the stream was opened with, or that minted its
	// browser token: EndKey(KeyID) ends the stream with "event:
	// key_revoked". Empty for the admin token.
	KeyID string
	// KeyValidFunc, if not nil, is asked once the stream is registered
	// under KeyID whether the key is still valid: a revocation that came
	// between the request's authentication and the registration would
	// otherwise miss the stream. Its error is Serve's.
	KeyValidFunc func(context.Context) error
}

// Serve streams the events of req's topics to w until the stream ends. An
// error means nothing was written and the caller should answer with it:
// a wrapped store.ErrNotFound for an unknown topic, ErrBadLastEventID, or
// ErrShuttingDown. Once streaming has begun Serve returns nil.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, req Request) error {
	topics := slices.Clone(req.Topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)

	release := func() {}
	if req.ReleaseFunc != nil {
		release = req.ReleaseFunc
	}
	handedOff := false
	defer func() {
		if !handedOff {
			release()
		}
	}()
	if !h.enter() {
		return ErrShuttingDown
	}
	defer func() {
		if !handedOff {
			h.leave()
		}
	}()

	// The stream's context derives from the handler's, not the request's:
	// a stream on a hijacked connection outlives its request. Until then,
	// the request ending (the client leaving) ends it.
	ctx, cancel := context.WithCancel(h.closeCtx)
	defer func() {
		if !handedOff {
			cancel()
		}
	}()
	stopRequestWatch := context.AfterFunc(r.Context(), cancel)
	defer stopRequestWatch()

	cursor, err := parseCursor(req.LastEventID, topics)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBadLastEventID, limit.Echo(req.LastEventID))
	}

	// Subscribe before reading positions, so nothing committed in between is
	// missed: events already covered by the positions are skipped below.
	wake := make(chan struct{}, 1)
	revoked, unwatch := h.watchKey(req.KeyID)
	defer func() {
		if !handedOff {
			unwatch()
		}
	}()
	if req.KeyValidFunc != nil {
		if err := req.KeyValidFunc(ctx); err != nil {
			return err
		}
	}
	s := &stream{
		h: h, app: req.App, topics: topics, multi: len(topics) > 1, until: req.Until,
		subs: make([]*broadcast.Subscription, len(topics)), pos: make([]uint64, len(topics)),
		keyID: req.KeyID, revoked: revoked,
	}
	for i, t := range topics {
		if s.subs[i], err = h.subscriber.Subscribe(ctx, req.App, t, wake); err != nil {
			return fmt.Errorf("subscribe %q: %w", t, err)
		}
	}
	replay := make([]bool, len(topics))
	for i, t := range topics {
		tp, err := h.history.GetTopic(ctx, req.App, t)
		if err != nil {
			return fmt.Errorf("topic %q: %w", t, err)
		}
		p, ok := cursor[t]
		switch {
		case !ok:
			s.pos[i] = tp.LastID // start with what comes next
		case p > tp.LastID:
			// An id from an earlier topic of the same name: all of this one is new.
			replay[i] = tp.LastID > 0
		default:
			s.pos[i] = p
			replay[i] = p < tp.LastID
		}
	}

	h.count(req.App, topics, 1)
	defer func() {
		if !handedOff {
			h.count(req.App, topics, -1)
		}
	}()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	hd.Del("Content-Length")
	s.out = h.open(w, r)
	defer func() {
		if !handedOff {
			s.out.close()
		}
	}()

	// retry once, a comment so that onopen fires on an idle topic, and the
	// starting position as the id of an event of its own: a reconnect before
	// the first message then resumes from here instead of from whatever is
	// new by then. The event has a type (onmessage ignores it) and data:
	// some client libraries record an id only from an event they dispatch,
	// and one without data is never dispatched.
	s.buf = append(s.buf, "retry: "...)
	s.buf = strconv.AppendInt(s.buf, h.opts.Retry.Milliseconds(), 10)
	s.buf = append(s.buf, "\n: connected\n\n"...)
	s.buf = s.appendStart(s.buf)
	if !s.flush() {
		return nil
	}
	for i := range topics {
		if replay[i] && !s.replay(ctx, req.App, i) {
			return nil
		}
	}

	h.metrics.Connections.Inc()
	h.metrics.Subscribers.Add(float64(len(topics)))
	live := func() {
		s.run(ctx, wake)
		h.metrics.Connections.Dec()
		h.metrics.Subscribers.Sub(float64(len(topics)))
	}
	if _, ok := s.out.(*rawConn); !ok {
		live()
		return nil
	}
	// The request goroutine has a stack grown by setup (SQL, auth) that it
	// would keep for the life of the stream; a fresh goroutine starts small.
	// It is counted in h.streams (by enter), so Close waits for it.
	stopRequestWatch()
	handedOff = true
	go func() {
		defer release()
		defer h.leave()
		defer unwatch()
		defer h.count(req.App, topics, -1)
		defer cancel()
		defer s.out.close()
		live()
	}()
	return nil
}

// sink is where a stream's bytes go: a hijacked HTTP/1.x connection, or the
// ResponseWriter (HTTP/2, or a writer that cannot be hijacked).
type sink interface {
	// write writes b in full, by the deadline.
	write(b []byte, deadline time.Time) error
	close()
}

// open writes the response head and returns the stream's sink. On HTTP/1.x
// it takes the connection over: the stream then costs one goroutine, no
// net/http buffers, and no chunked encoding. The end of the body is the end
// of the connection, as HTTP/1.1 allows with "Connection: close". The
// client leaving is noticed on the next write, at the latest the next
// heartbeat.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) sink {
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		conn, brw, err := rc.Hijack()
		if err == nil {
			// Nothing of the response has been written, and a GET has no
			// body: what net/http buffered is dropped with it.
			_ = brw
			head := make([]byte, 0, 256)
			head = append(head, "HTTP/1.1 200 OK\r\n"...)
			w.Header().Set("Connection", "close")
			var hb headerBuffer
			w.Header().Write(&hb) //nolint:errcheck // writes to memory
			head = append(head, hb...)
			head = append(head, "\r\n"...)
			return &rawConn{conn: conn, head: head}
		}
	}
	w.WriteHeader(http.StatusOK)
	return &responseSink{w: w, rc: rc}
}

type headerBuffer []byte

func (b *headerBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// rawConn is a hijacked connection. The response head goes out with the
// first write.
type rawConn struct {
	conn net.Conn
	head []byte
}

func (c *rawConn) write(b []byte, deadline time.Time) error {
	if !deadline.IsZero() {
		if err := c.conn.SetWriteDeadline(deadline); err != nil {
			return err
		}
	}
	if c.head != nil {
		b = append(c.head, b...)
		c.head = nil
	}
	_, err := c.conn.Write(b)
	return err
}

func (c *rawConn) close() { c.conn.Close() }

// responseSink writes through the ResponseWriter and flushes each write.
type responseSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *responseSink) write(b []byte, deadline time.Time) error {
	if !deadline.IsZero() {
		if err := s.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *responseSink) close() {}

// stream is one connection's state: a cursor per topic and a write buffer
// that is released between bursts.
type stream struct {
	h      *Handler
	app    string
	out    sink
	topics []string
	multi  bool
	subs   []*broadcast.Subscription // nil once the topic was dropped
	pos    []uint64                  // last id sent per topic
	buf    []byte                    // frames waiting for one write
	evs    []*broadcast.Event        // scratch for Receive
	// deadline is when the current write deadline ends; it is moved only
	// when less than half the timeout remains, to spare a syscall per write.
	deadline time.Time
	// until is when the stream must end (Request.Until); zero means never.
	until time.Time
	// keyID is Request.KeyID; revoked closes when that key is revoked
	// (nil, never, when there is no key).
	keyID   string
	revoked <-chan struct{}
}

func (s *stream) run(ctx context.Context, wake <-chan struct{}) {
	var tick <-chan time.Time
	if s.h.opts.Heartbeat > 0 {
		t := time.NewTicker(s.h.opts.Heartbeat)
		defer t.Stop()
		tick = t.C
	}
	var expiry <-chan time.Time
	if !s.until.IsZero() {
		t := time.NewTimer(time.Until(s.until))
		defer t.Stop()
		expiry = t.C
	}
	live := len(s.subs)
	for {
		select {
		case <-ctx.Done():
			return
		case <-expiry:
			s.endExpired()
			return
		case <-s.revoked:
			s.endRevoked()
			return
		case <-tick:
			s.buf = append(s.buf, ": ping\n\n"...)
			if !s.flush() {
				return
			}
			continue
		case <-wake:
		}
		for i, sub := range s.subs {
			if sub == nil {
				continue
			}
			// The missed count is not needed: appendEvent finds every gap,
			// from the ring or from anywhere else, in the ids themselves.
			var err error
			s.evs, _, err = sub.Receive(s.evs[:0])
			for _, ev := range s.evs {
				s.appendEvent(i, ev)
			}
			clear(s.evs) // do not pin events until the next burst
			switch {
			case errors.Is(err, broadcast.ErrTopicDropped):
				s.buf = append(s.buf, "event: topic_deleted\ndata: {\"topic\":\""...)
				s.buf = append(s.buf, s.topics[i]...)
				s.buf = append(s.buf, "\"}\n\n"...)
				s.subs[i] = nil
				live--
			case err != nil:
				return // the stream's context ended
			}
		}
		// select picks at random among ready cases: a burst that woke the
		// stream together with its expiry must not go out after it.
		if !s.until.IsZero() && !time.Now().Before(s.until) {
			s.buf = s.buf[:0]
			s.endExpired()
			return
		}
		if !s.flush() || live == 0 {
			return
		}
	}
}

// endExpired tells the client that the token the stream was opened with
// expired, so a page can mint a new one and resume with ?last_event_id=
// (EventSource's own reconnect would reuse the expired token and get 401).
func (s *stream) endExpired() {
	s.buf = append(s.buf, "event: token_expired\ndata: {\"expired_at\":\""...)
	s.buf = s.until.UTC().AppendFormat(s.buf, time.RFC3339)
	s.buf = append(s.buf, "\"}\n\n"...)
	s.flush()
}

// appendEvent adds ev's frame unless the stream already sent it, announcing
// first any gap before it: ids grow by one per message, so a gap is exactly
// the number of events this subscriber lost.
func (s *stream) appendEvent(i int, ev *broadcast.Event) {
	if ev.ID <= s.pos[i] {
		return // sent by replay, or before this stream's start
	}
	if gap := ev.ID - s.pos[i] - 1; gap > 0 {
		s.appendLagged(i, gap)
	}
	s.pos[i] = ev.ID
	frame := ev.Frame(EncodeEvent)
	if s.multi {
		s.buf = append(s.buf, "id: "...)
		s.buf = s.appendID(s.buf, i)
		s.buf = append(s.buf, '\n')
		s.buf = append(s.buf, dataPart(frame)...)
	} else {
		s.buf = append(s.buf, frame...)
	}
	s.h.metrics.Delivered.Inc()
}

func (s *stream) appendLagged(i int, missed uint64) {
	s.buf = append(s.buf, "event: lagged\ndata: {\"missed\":"...)
	s.buf = strconv.AppendUint(s.buf, missed, 10)
	s.buf = append(s.buf, ",\"topic\":\""...)
	s.buf = append(s.buf, s.topics[i]...)
	s.buf = append(s.buf, "\"}\n\n"...)
	s.h.metrics.Lagged.Add(float64(missed))
	s.h.metrics.LagEpisodes.Inc()
	if s.h.opts.Stats != nil {
		s.h.opts.Stats.Lagged(s.app, s.topics[i], missed)
	}
}

// appendStart appends the start event, the stream's starting position:
//
//	event: start
//	id: 1842
//	data: {"id":"1842"}
//
// The id is digits or a cursor of topic names and digits, so it needs no
// JSON escaping.
func (s *stream) appendStart(b []byte) []byte {
	b = append(b, "event: start\nid: "...)
	b = s.appendID(b, 0)
	b = append(b, "\ndata: {\"id\":\""...)
	b = s.appendID(b, 0)
	return append(b, "\"}\n\n"...)
}

// appendID appends the stream's current id: the message id on a
// single-topic stream, the cursor of every topic on a multi-topic one.
func (s *stream) appendID(b []byte, i int) []byte {
	if !s.multi {
		return strconv.AppendUint(b, s.pos[i], 10)
	}
	return appendCursor(b, s.topics, s.pos)
}

// replay sends topic i's history after its position, in batches, until it
// has caught up; live events that arrive meanwhile wait in the subscription
// and are skipped by id if replay already sent them.
func (s *stream) replay(ctx context.Context, app string, i int) bool {
	for {
		msgs, err := s.h.history.History(ctx, app, s.topics[i], s.pos[i], s.h.opts.ReplayBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.h.log.Warn("replay failed; stream closed", "app", app, "topic", s.topics[i], "err", err)
			}
			return false
		}
		for j := range msgs {
			m := &msgs[j]
			s.appendEvent(i, &broadcast.Event{App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt})
		}
		if !s.flush() {
			return false
		}
		if len(msgs) < s.h.opts.ReplayBatch {
			return true
		}
	}
}

// flush writes the pending frames in one write under a deadline. It returns
// false when the stream must end.
func (s *stream) flush() bool {
	if len(s.buf) == 0 {
		return true
	}
	now := time.Now()
	var deadline time.Time
	if s.deadline.Sub(now) < s.h.opts.WriteTimeout/2 {
		s.deadline = now.Add(s.h.opts.WriteTimeout)
		deadline = s.deadline
	}
	err := s.out.write(s.buf, deadline)
	if cap(s.buf) > 64<<10 {
		s.buf = nil // a burst's buffer is not kept for an idle stream
	} else {
		s.buf = s.buf[:0]
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.h.metrics.SlowDisconnects.Inc()
			if s.h.opts.Stats != nil {
				s.h.opts.Stats.SlowDisconnect(s.app)
			}
			s.h.log.Info("slow consumer disconnected: a write missed its deadline", "timeout", s.h.opts.WriteTimeout)
		}
		return false
	}
	return true
}
