package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/store"
)

// connLimit is a listener that keeps at most max connections open. Past
// the cap it first closes the connection that has waited longest without a
// request in progress (a fresh one that has not finished its headers, or
// a kept-alive one between requests), which is what a flood of idle
// connections is made of and what a well-behaved client reopens without
// harm. With none of those, Accept waits for a connection to close, and
// new clients wait in the kernel's backlog: the server slows down for them
// instead of running out of file descriptors, which would fail the store
// and webhooks too.
//
// netutil.LimitListener (golang.org/x/net) only waits; eviction needs the
// connections' HTTP states, which the server reports through track.
type connLimit struct {
	net.Listener
	max int

	mu   sync.Mutex
	cond *sync.Cond // signalled, under mu, when open drops or closed is set
	open int        // guarded by mu; connections accepted and not closed
	// idle holds, keyed by the conn net/http reports states for, the
	// connections without a request in progress and since when. Guarded
	// by mu.
	idle   map[net.Conn]time.Time
	closed bool // guarded by mu; the listener was closed
}

// newConnLimit limits ln to max connections; max <= 0 is no limit.
func newConnLimit(ln net.Listener, max int) *connLimit {
	l := &connLimit{Listener: ln, max: max, idle: make(map[net.Conn]time.Time)}
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
		if v := l.oldestIdleLocked(); v != nil {
			delete(l.idle, v)
			l.mu.Unlock()
			v.Close() // its release makes the room
			l.mu.Lock()
			continue
		}
		l.cond.Wait()
	}
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

func (l *connLimit) oldestIdleLocked() net.Conn {
	var (
		oldest net.Conn
		since  time.Time
	)
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
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
		l.idle[c] = time.Now()
	default: // active, hijacked (a stream), closed
		delete(l.idle, c)
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
