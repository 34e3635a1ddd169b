package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/store"
)

// connLimit is a listener that keeps at most max connections open. Past
// the cap it first closes the connection that has waited longest on its
// client: one without a request in progress (a fresh one that has not
// finished its headers, or a kept-alive one between requests), or one
// whose request body has stalled (a read of it pending, no byte for the
// longest). Those are what floods of idle connections and of bodies that
// never finish are made of, and what a well-behaved client reopens or
// resends without harm; a connection whose client is sending, or whose
// request the server is working on, or that holds a stream, is never
// closed to make room. With none to close, Accept waits for a connection
// to close, and new clients wait in the kernel's backlog: the server slows
// down for them instead of running out of file descriptors, which would
// fail the store and webhooks too.
//
// Why stalled bodies, and not a cap per client address or a minimum data
// rate: a body that stalls holds its slot until --read-timeout (10 s) with
// any key, so a few hundred of them from one client filled every slot and
// /healthz waited the read timeout out. A cap per address would refuse
// the many subscribers behind one NAT or proxy (and herald bench's
// thousands from 127.0.0.1), and would not stop an attacker with several
// addresses; a minimum rate cuts honest slow links even when the server
// has room. Closing the stalled body only when a connection is needed
// costs nothing while there is room, and under attack hands the slot to
// whoever is ready to use it.
//
// netutil.LimitListener (golang.org/x/net) only waits; eviction needs the
// connections' HTTP states, which the server reports through track, and
// their bodies' reads, which watchBodies reports.
type connLimit struct {
	net.Listener
	max int

	mu   sync.Mutex
	cond *sync.Cond // signalled, under mu, when open drops, a conn starts waiting, or closed is set
	open int        // guarded by mu; connections accepted and not closed
	// conns holds, keyed by the conn net/http reports states for, every
	// connection it serves (from StateNew until closed or hijacked) and
	// whether and since when it waits on its client. Guarded by mu.
	conns  map[net.Conn]*clientWait
	closed bool // guarded by mu; the listener was closed
	// full is set, under mu, while Accept looks for a connection to close
	// or waits for one: only then must a body read that starts waiting
	// (bodyWait) take mu to signal cond. Every request's body reads
	// otherwise touch only their own connection's clientWait.
	full atomic.Bool
}

// clientWait is whether, and since when, a connection waits on its client.
// Its fields are atomic: the connection's body reads write them without
// connLimit.mu, which Accept holds while it reads them.
type clientWait struct {
	waiting atomic.Bool
	since   atomic.Int64 // Unix nanoseconds
}

// wait records that the connection waits on its client from now on, or
// (waiting false) does not.
func (w *clientWait) wait(waiting bool) {
	if waiting {
		w.since.Store(time.Now().UnixNano())
	}
	w.waiting.Store(waiting)
}

// newConnLimit limits ln to max connections; max <= 0 is no limit.
func newConnLimit(ln net.Listener, max int) *connLimit {
	l := &connLimit{Listener: ln, max: max, conns: make(map[net.Conn]*clientWait)}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Accept waits for a connection, making room for it first when at the cap.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for l.max > 0 && l.open >= l.max && !l.closed {
		// Set before the connections are read: a body read that starts
		// waiting after they are either is seen by the scan or sees full
		// and signals (see bodyWait).
		l.full.Store(true)
		if v := l.longestWaitingLocked(); v != nil {
			// Forgotten first, so it is closed once; its release makes
			// the room.
			delete(l.conns, v)
			l.mu.Unlock()
			v.Close()
			l.mu.Lock()
			continue
		}
		l.cond.Wait()
	}
	l.full.Store(false)
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.open++
	l.mu.Unlock()
	return &limitedConn{Conn: c, l: l}, nil
}

// Close closes the listener and wakes an Accept waiting for room.
func (l *connLimit) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

func (l *connLimit) longestWaitingLocked() net.Conn {
	var (
		oldest net.Conn
		since  int64
	)
	for c, w := range l.conns {
		if !w.waiting.Load() {
			continue
		}
		if t := w.since.Load(); oldest == nil || t < since {
			oldest, since = c, t
		}
	}
	return oldest
}

// track follows a connection's HTTP state (http.Server.ConnState).
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		w := l.conns[c]
		if w == nil {
			w = &clientWait{}
			l.conns[c] = w
		}
		w.wait(true)
		l.cond.Signal()
	case http.StateActive:
		if w := l.conns[c]; w != nil {
			w.wait(false)
		}
	default: // hijacked (a stream), closed
		delete(l.conns, c)
	}
}

// clientWait returns what l keeps of c, nil if nothing (closed already, or
// HTTP/2).
func (l *connLimit) clientWait(c net.Conn) *clientWait {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[c]
}

// bodyWait reports that a read of w's connection's request body starts
// (waiting) or has returned. Reads that return at once come and go; a
// read left pending makes the connection a candidate to close, as the
// longest waiting.
func (l *connLimit) bodyWait(w *clientWait, waiting bool) {
	w.wait(waiting)
	if waiting && l.full.Load() {
		l.mu.Lock()
		l.cond.Signal()
		l.mu.Unlock()
	}
}

func (l *connLimit) release() {
	l.mu.Lock()
	l.open--
	l.cond.Signal()
	l.mu.Unlock()
}

// limitedConn gives its slot back when closed, once, however often it is
// closed (net/http and a hijacking stream may both close it).
type limitedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}

var _ syscall.Conn = (*limitedConn)(nil)

// SyscallConn gives the wrapped connection's file descriptor (a
// syscall.Conn), which the SSE fan-out writes to without waiting; the
// embedded net.Conn alone would hide it. Writes through it do not touch
// the limit, which only Close does.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T: %w", c.Conn, errors.ErrUnsupported)
	}
	return sc.SyscallConn()
}

// connKey is the context key of the connection a request came on.
type connKey struct{}

// withConn is the server's ConnContext: it keeps the connection in the
// context, for watchBodies.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// watchBodies reports the reads of HTTP/1.x request bodies to l, so that
// a connection whose body stalls can be closed when the cap needs room.
// HTTP/2 is left out: its connection carries other requests' streams, and
// a stalled stream costs a flow-control window, not a connection.
func (l *connLimit) watchBodies(next http.Handler) http.Handler {
	if l.max <= 0 {
		return next // no cap, no room to make
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(net.Conn)
		if c == nil || r.ProtoMajor != 1 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if cw := l.clientWait(c); cw != nil {
			r.Body = &watchedBody{ReadCloser: r.Body, l: l, w: cw}
		}
		next.ServeHTTP(w, r)
	})
}

// watchedBody is a request body whose reads are reported to its
// connection's limit.
type watchedBody struct {
	io.ReadCloser
	l *connLimit
	w *clientWait
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.l.bodyWait(b.w, true)
	n, err := b.ReadCloser.Read(p)
	b.l.bodyWait(b.w, false)
	return n, err
}

// maxStreams is how many event streams a node with maxConns connections
// holds: an eighth of the connections (at least one) stays free of streams,
// so a node full of subscribers still answers publishes, probes and the
// admin. A stream past it is refused with 503 and Retry-After rather than
// left waiting for a connection.
func maxStreams(maxConns int) int {
	if maxConns <= 0 {
		return 0
	}
	return max(maxConns-max(maxConns/8, 1), 1)
}

// limitStore is the store's keeper of per-app limits; both stores are one.
func limitStore(st store.Store) store.LimitStore {
	ls, _ := st.(store.LimitStore)
	return ls
}

// appLimits enforces the per-app limits on this node: the server-wide
// defaults of the configuration, each app's own from the store, refusals
// counted in the metrics.
func (s *Server) appLimits(st store.Store) *limit.Apps {
	opts := limit.AppsOptions{
		Defaults:    s.cfg.AppLimits,
		RefusedFunc: func(kind string) { s.metrics.LimitRefusals.WithLabelValues(kind).Inc() },
	}
	if ls := limitStore(st); ls != nil {
		opts.LookupFunc = ls.AppLimits
	}
	return limit.NewApps(opts)
}
