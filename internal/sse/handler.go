package sse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
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
	Subscribe(ctx context.Context, app, topic string, wake func()) (*broadcast.Subscription, error)
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
// ends every stream and waits for their goroutines to return, which is what
// lets http.Server.Shutdown finish: SSE streams never go idle on their own.
type Handler struct {
	subscriber Subscriber
	history    History
	opts       Options
	metrics    *metrics.Metrics
	log        *slog.Logger
	adm        admission
	fan        fanout

	closeCtx  context.Context // ended by Close; every stream's context derives from it
	cancelAll context.CancelFunc
}

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
		fan:      fanout{metrics: m},
		closeCtx: ctx, cancelAll: cancel,
	}
}

// Close ends every stream and waits until their goroutines have returned or
// ctx ends, then stops the fan-out workers. New streams are refused with
// ErrShuttingDown. It is safe to call more than once.
func (h *Handler) Close(ctx context.Context) error {
	h.adm.close()
	h.cancelAll()
	done := make(chan struct{})
	go func() { h.adm.streams.Wait(); close(done) }() // ends when the last stream does
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close streams: %w", ctx.Err())
	}
	// Streams end through their workers (which hand them to their own
	// goroutines), so the workers stop last; a stream that outlived ctx is
	// handed over as the workers stop.
	h.fan.close()
	return err
}

// Subscribers returns how many streams on this node follow (app, topic).
func (h *Handler) Subscribers(app, topic string) int {
	return h.adm.subscribers(app, topic)
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
//
// On HTTP/1.x the stream runs in a goroutine of its own and Serve returns
// at once: the request goroutine has a stack grown by setup (SQL, auth)
// that it would keep for the life of the stream, and a fresh goroutine
// starts small. Whichever goroutine runs the stream runs its cleanup
// (stream.end), once.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, req Request) error {
	topics := slices.Clone(req.Topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	release := req.ReleaseFunc
	if release == nil {
		release = func() {}
	}
	cursor, err := parseCursor(req.LastEventID, topics)
	if err != nil {
		release()
		return fmt.Errorf("%w: %q", ErrBadLastEventID, limit.Echo(req.LastEventID))
	}
	if !h.adm.enter() {
		release()
		return ErrShuttingDown
	}
	s, err := h.newStream(r.Context(), req, topics, cursor)
	if err != nil {
		release()
		return err
	}
	s.release = release // from here on the stream's end calls it
	s.out = takeOver(w, r, h.opts.WriteTimeout)
	switch s.out.(type) {
	case *rawConn, *directConn:
	default:
		s.serve()
		return nil
	}
	if dw, ok := s.out.(directWriter); ok {
		if h.fan.start() { // not once Close began: then s writes itself
			s.dw, s.fan = dw, &h.fan
		}
	}
	// The request's context ends when Serve returns; the stream, on a
	// connection it now owns, lives on until its own context ends.
	s.stopRequestWatch()
	go s.serve() // owned by h.adm.streams (entered above), which Close waits on
	return nil
}

// newStream registers the stream under its key, subscribes to its topics
// and reads where each position starts. The stream's context derives from
// the handler's, not the request's (a stream on a hijacked connection
// outlives its request), but until it is handed off the request ending (the
// client leaving) ends it. On error everything newStream took is released,
// admission included.
func (h *Handler) newStream(reqCtx context.Context, req Request, topics []string, cursor map[string]uint64) (*stream, error) {
	ctx, cancel := context.WithCancel(h.closeCtx)
	s := &stream{
		h: h, ctx: ctx, cancel: cancel, stopRequestWatch: context.AfterFunc(reqCtx, cancel),
		app: req.App, topics: topics, multi: len(topics) > 1, until: req.Until, keyID: req.KeyID,
		wake: make(chan struct{}, 1),
		subs: make([]*broadcast.Subscription, len(topics)), pos: make([]uint64, len(topics)),
		replay: make([]bool, len(topics)),
	}
	s.deadlineDue.Store(true)
	h.adm.watchKey(s)
	err := s.checkKey(req.KeyValidFunc)
	if err == nil {
		err = s.subscribe(cursor)
	}
	if err != nil {
		h.adm.unwatchKey(s)
		s.stopRequestWatch()
		cancel()
		h.adm.leave()
		return nil, err
	}
	h.count(req.App, topics, 1)
	return s, nil
}

// count adds delta to the live subscriber count of each topic, and to the
// app's connection count in Stats.
func (h *Handler) count(app string, topics []string, delta int) {
	if h.opts.Stats != nil {
		h.opts.Stats.Connections(app, delta)
	}
	h.adm.count(app, topics, delta)
}
