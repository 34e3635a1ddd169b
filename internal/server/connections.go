package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/httpapi"
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
// A stalled body closed so is answered first, where that can be done
// safely: 408 request_timeout with Connection: close, so that a client
// that is only slow learns why instead of seeing a reset. That takes an
// HTTP/1.x request (HTTP/2 bodies are not watched), with nothing of its
// response written yet and no 100 Continue expected (either would make
// the 408 a second answer), on a connection not hijacked (one that is is
// no longer here). The answer is written by a goroutine of its own under
// a deadline of answerTimeout, then the connection is closed whether the
// client took it or not: Accept never waits on a client, and a client
// that does not read costs answerTimeout at most. Its slot is handed over
// at once, so up to maxAnswering connections being answered are open
// beyond the cap; past that, stalled bodies are closed unanswered.
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
	// connection it serves (from StateNew until closed or hijacked), as
	// Accept returned it (with whether and since when it waits on its
	// client). Guarded by mu.
	conns  map[net.Conn]*limitedConn
	closed bool // guarded by mu; the listener was closed
	// full is set, under mu, while Accept looks for a connection to close
	// or waits for one: only then must a body read that starts waiting
	// (bodyWait) take mu to signal cond. Every request's body reads
	// otherwise touch only their own connection's clientWait.
	full atomic.Bool

	// answering counts the stalled bodies being answered (at most
	// maxAnswering). Guarded by mu.
	answering int
	// answers counts their goroutines; Close waits for them. Added to
	// under mu while not closed, so Close's Wait sees every one.
	answers sync.WaitGroup
	// stalledBody is the body of their 408.
	stalledBody []byte
}

// answerTimeout bounds writing the 408 to a stalled body closed to make
// room: it is a few hundred bytes, which a client that reads takes at
// once.
const answerTimeout = 100 * time.Millisecond

// maxAnswering bounds how many stalled bodies closed to make room are
// being answered at once, each holding its connection past the cap for
// answerTimeout at most.
const maxAnswering = 16

// The states of a connection's request body (clientWait.body).
const (
	bodyIdle    int32 = iota // no read of it pending
	bodyReading              // a read of it is pending
	bodyTaken                // Accept took the connection during a read, to close it
)

// errBodyEvicted is what a body read returns once its connection was
// taken to make room.
var errBodyEvicted = errors.New("read request body: the connection was closed to make room for another")

// clientWait is whether, and since when, a connection waits on its client,
// and what Accept needs to know to answer a stalled body. Its fields are
// atomic: the connection's body reads and writes use them without
// connLimit.mu, which Accept holds while it reads them.
type clientWait struct {
	// since is when the connection started waiting on its client, in Unix
	// nanoseconds, or 0 while it does not: one word, so that Accept never
	// reads a wait's start from another than the one it sees.
	since atomic.Int64
	// body is bodyIdle, bodyReading or bodyTaken. A body read and Accept
	// both move it from bodyReading, with a compare-and-swap: whichever
	// wins decides whether the read's result goes to the handler or the
	// connection is closed.
	body atomic.Int32
	// responded is set once anything of the current request's response is
	// written on the connection (or may be at any body read, as a 100
	// Continue is); StateActive clears it.
	responded atomic.Bool
	// taken is done when Accept, having taken the connection from a
	// pending body read, has answered and closed it: the read waits for
	// it, so its handler writes nothing before the answer.
	taken sync.WaitGroup
}

// wait records that the connection waits on its client from now on, or
// (waiting false) does not.
func (w *clientWait) wait(waiting bool) {
	var since int64
	if waiting {
		since = time.Now().UnixNano()
	}
	w.since.Store(since)
}

// newConnLimit limits ln to max connections; max <= 0 is no limit.
func newConnLimit(ln net.Listener, max int) *connLimit {
	l := &connLimit{
		Listener: ln,
		max:      max,
		conns:    make(map[net.Conn]*limitedConn),
		stalledBody: httpapi.ErrorBody("request_timeout", "the request body stopped arriving while the server had no connection to spare: "+
			"this connection was closed to make room for others; send the request again"),
	}
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
		if v, lc := l.longestWaitingLocked(); lc != nil {
			// Forgotten first, so it is closed once; its release makes
			// the room.
			delete(l.conns, v)
			taken, answer := l.takeLocked(lc)
			l.mu.Unlock()
			l.evict(v, lc, taken, answer)
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

// Close closes the listener, wakes an Accept waiting for room, and waits
// for the answers to stalled bodies (answerTimeout at most).
func (l *connLimit) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	err := l.Listener.Close()
	l.answers.Wait()
	return err
}

// longestWaitingLocked returns the connection that has waited longest on
// its client, as net/http reports it (c) and as l accepted it (lc), or
// nils.
func (l *connLimit) longestWaitingLocked() (c net.Conn, lc *limitedConn) {
	var since int64
	for k, v := range l.conns {
		if t := v.wait.since.Load(); t != 0 && (lc == nil || t < since) {
			c, lc, since = k, v, t
		}
	}
	return c, lc
}

// takeLocked takes lc, chosen to be closed, from its pending body read if
// it has one (taken), and reports whether it is to be answered with a 408
// (see connLimit) rather than closed at once. evict then closes it and
// releases the read it took (clientWait.taken).
func (l *connLimit) takeLocked(lc *limitedConn) (taken, answer bool) {
	w := &lc.wait
	w.taken.Add(1) // before the swap: a read that loses it waits
	if !w.body.CompareAndSwap(bodyReading, bodyTaken) {
		// No request, or its read has just returned: nothing to answer,
		// and no read to release.
		w.taken.Done()
		return false, false
	}
	// The handler is inside the read: nothing of its response can be
	// written from now on, only before.
	if w.responded.Load() || l.answering >= maxAnswering {
		return true, false
	}
	l.answering++
	l.answers.Add(1)
	return true, true
}

// evict closes c (lc, as accepted), first answering its stalled body
// with a 408 if answer, in a goroutine of its own that Close waits for.
// Its slot is released at once either way. The connection under a TLS one
// is closed, not the TLS connection, whose close_notify could wait on a
// client that does not read.
func (l *connLimit) evict(c net.Conn, lc *limitedConn, taken, answer bool) {
	if !answer {
		_ = lc.Close() // dropped either way: nothing to do about an error
		if taken {
			lc.wait.taken.Done()
		}
		return
	}
	lc.once.Do(l.release)
	go func() {
		defer l.answers.Done()
		_ = c.SetWriteDeadline(time.Now().Add(answerTimeout))
		_, _ = c.Write(l.timeoutAnswer())
		_ = lc.Close() // as above
		lc.wait.taken.Done()
		l.mu.Lock()
		l.answering--
		l.mu.Unlock()
	}()
}

// timeoutAnswer is the whole HTTP/1.1 response to a stalled body closed
// to make room.
func (l *connLimit) timeoutAnswer() []byte {
	head := fmt.Sprintf("HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Connection: close\r\nDate: %s\r\n\r\n", len(l.stalledBody), time.Now().UTC().Format(http.TimeFormat))
	return append([]byte(head), l.stalledBody...)
}

// track follows a connection's HTTP state (http.Server.ConnState).
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		lc := l.conns[c]
		if lc == nil {
			if lc = accepted(c); lc == nil {
				return // not from Accept: nothing to close it by
			}
			l.conns[c] = lc
		}
		lc.wait.wait(true)
		l.cond.Signal()
	case http.StateActive:
		if lc := l.conns[c]; lc != nil {
			lc.wait.responded.Store(false)
			lc.wait.wait(false)
		}
	default: // hijacked (a stream), closed
		delete(l.conns, c)
	}
}

// accepted returns the connection Accept returned under c: c itself, or
// the one a TLS connection runs on; nil if neither.
func accepted(c net.Conn) *limitedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*limitedConn)
	return lc
}

// clientWait returns what l keeps of c, nil if nothing (closed already, or
// HTTP/2).
func (l *connLimit) clientWait(c net.Conn) *clientWait {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc := l.conns[c]; lc != nil {
		return &lc.wait
	}
	return nil
}

// bodyWait reports that a read of w's connection's request body starts
// (waiting) or has returned, and whether the read is the handler's: false
// once Accept took the connection to close it. Reads that return at once
// come and go; a read left pending makes the connection a candidate to
// close, as the longest waiting.
func (l *connLimit) bodyWait(w *clientWait, waiting bool) bool {
	if !waiting {
		// Not waiting first: Accept, which looks only at connections
		// waiting, then either took it already or will pass it by.
		w.wait(false)
		return w.body.CompareAndSwap(bodyReading, bodyIdle)
	}
	if !w.body.CompareAndSwap(bodyIdle, bodyReading) {
		return false
	}
	w.wait(true)
	if l.full.Load() {
		l.mu.Lock()
		l.cond.Signal()
		l.mu.Unlock()
	}
	return true
}

func (l *connLimit) release() {
	l.mu.Lock()
	l.open--
	l.cond.Signal()
	l.mu.Unlock()
}

// limitedConn gives its slot back when closed, once, however often it is
// closed (net/http and a hijacking stream may both close it), and notes
// that a response is being written on it.
type limitedConn struct {
	net.Conn
	l    *connLimit
	once sync.Once
	wait clientWait
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if !c.wait.responded.Load() {
		c.wait.responded.Store(true)
	}
	return c.Conn.Write(p)
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
			if r.Header.Get("Expect") != "" {
				// net/http writes a 100 Continue at the first read.
				cw.responded.Store(true)
			}
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
	if !b.l.bodyWait(b.w, true) {
		return 0, errBodyEvicted
	}
	n, err := b.ReadCloser.Read(p)
	if !b.l.bodyWait(b.w, false) {
		// Taken to make room: what was read is not the handler's, and
		// it answers nothing before the 408 is written and the
		// connection closed.
		b.w.taken.Wait()
		return 0, errBodyEvicted
	}
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
