package sse

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"
)

// sink is where a stream's bytes go: a hijacked HTTP/1.x connection, or the
// ResponseWriter (HTTP/2, or a writer that cannot be hijacked).
type sink interface {
	// write writes b in full, by the deadline (the zero time keeps the
	// current one).
	write(b []byte, deadline time.Time) error
	close()
}

// directWriter is a sink that can also write without waiting, which is
// what lets a fan-out worker write to it (stream.deliverDirect). A stream
// whose sink is not one always writes from its own goroutine.
type directWriter interface {
	// tryWrite writes as much of b as the socket takes now and returns
	// how much that was; 0 and no error when it takes nothing.
	tryWrite(b []byte) (int, error)
	// clearDeadline removes the write deadline: a write that does not
	// wait needs none, and one left standing would fail it once passed.
	clearDeadline() error
}

// takeOver writes the response head and returns the stream's sink. On
// HTTP/1.x it takes the connection over: the stream then costs no net/http
// buffers and no chunked encoding. The end of the body is the end of the
// connection, as HTTP/1.1 allows with "Connection: close". The client
// leaving is noticed on the next write, at the latest the next heartbeat.
// writeTimeout bounds each write of the ResponseWriter path (see
// responseSink).
func takeOver(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) sink {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	hd.Del("Content-Length")
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		// Nothing of the response has been written, and a GET has no body:
		// what net/http buffered is dropped with the bufio.ReadWriter.
		if conn, _, err := rc.Hijack(); err == nil {
			hd.Set("Connection", "close")
			return newRawConn(conn, responseHead(hd))
		}
	}
	w.WriteHeader(http.StatusOK)
	return &responseSink{w: w, rc: rc, timeout: writeTimeout}
}

// responseHead is the status line and header block of a 200 response.
func responseHead(hd http.Header) []byte {
	head := headerBuffer(make([]byte, 0, 256))
	head = append(head, "HTTP/1.1 200 OK\r\n"...)
	hd.Write(&head) //nolint:errcheck // writes to memory
	return append(head, "\r\n"...)
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
	// raw is conn's file descriptor, for tryWrite; nil when conn has none
	// to write to directly (TLS), and then rawConn is no directWriter.
	raw syscall.RawConn

	// tryWrite's call of raw.Write, kept in fields so that the callback is
	// made once per connection, not once per write (a closure passed
	// through the interface would be allocated on every call).
	pending      []byte
	written      int
	werr         error
	writeNowFunc func(fd uintptr) bool
}

// newRawConn returns conn as a sink, and as a directWriter when conn
// exposes its file descriptor (syscall.Conn) on a platform whose sockets
// the fan-out workers can write to without waiting (sendsDirect).
func newRawConn(conn net.Conn, head []byte) sink {
	c := &rawConn{conn: conn, head: head}
	sc, ok := conn.(syscall.Conn)
	if !ok || !sendsDirect {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	c.raw = raw
	c.writeNowFunc = c.writeNow
	return &directConn{c}
}

// directConn is a rawConn with a file descriptor: a directWriter.
type directConn struct{ *rawConn }

// tryWrite implements directWriter with one write(2) on the non-blocking
// socket: no poller wait, so a full socket buffer (EAGAIN) returns 0.
func (c *directConn) tryWrite(b []byte) (int, error) {
	c.pending, c.written, c.werr = b, 0, nil
	err := c.raw.Write(c.writeNowFunc)
	c.pending = nil
	if err != nil {
		return 0, err
	}
	return c.written, c.werr
}

// writeNow is raw.Write's callback: it returns true whatever the outcome,
// so that raw.Write never waits for the socket to become writable.
func (c *rawConn) writeNow(fd uintptr) bool {
	for {
		n, err := sendNow(fd, c.pending)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil:
			c.werr = err
			return true
		}
		c.written = n
		return true
	}
}

func (c *directConn) clearDeadline() error { return c.conn.SetWriteDeadline(time.Time{}) }

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
//
// Its deadline covers each write alone and is cleared after it: on HTTP/2
// net/http resets a stream whose write deadline passes even when no write is
// pending, so a deadline left standing would end an idle stream (a quiet
// topic between heartbeats, or a busy machine's late timer) as if its client
// had stopped reading. Setting it costs a timer, not a system call, so the
// stream's deadline-refresh schedule (which spares rawConn a syscall per
// write) is not needed here.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *responseSink) write(b []byte, _ time.Time) error {
	if err := s.setDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	return s.setDeadline(time.Time{})
}

func (s *responseSink) setDeadline(t time.Time) error {
	if err := s.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (s *responseSink) close() {}
