package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/client"
)

// publishTimeout bounds a publish request, as the http.Client's Timeout
// bounds the SDK's.
const publishTimeout = 30 * time.Second

// publishSender sends one publisher's requests to one node and returns
// once the node has answered, with nil for a 202.
type publishSender interface {
	publish(ctx context.Context, app, topic string, message []byte) error
	publishBatch(ctx context.Context, app string, msgs []client.BatchMessage) error
}

// sdkSender publishes through the SDK's client: for https, where its
// Transport speaks HTTP/2 as a real client of a TLS server would.
type sdkSender struct{ c *client.Client }

func (s sdkSender) publish(ctx context.Context, app, topic string, message []byte) error {
	_, err := s.c.Publish(ctx, app, topic, message)
	return err
}

func (s sdkSender) publishBatch(ctx context.Context, app string, msgs []client.BatchMessage) error {
	_, err := s.c.PublishBatch(ctx, app, msgs)
	return err
}

// publishConn is one publisher's HTTP/1.1 connection to one node (plain
// http): the publisher writes each request and reads its answer itself.
//
// Why not the SDK's client, as over https: its Transport hands every
// request to a goroutine that writes it and every answer back from one
// that reads it, and those hand-offs and wake-ups cost more of the bench's
// CPU than the request itself, on the cores the server being measured
// shares. The server sees the bytes the Transport sends for
// client.Client.Publish (its headers, in its order), so it does the same
// work; the connection is dialled again after an error or a
// "Connection: close".
type publishConn struct {
	base       *url.URL
	host, auth string // the Host and Authorization headers
	prefix     string // the base URL's path, without a trailing slash

	// mu guards conn and closed: the publisher dials and drops conn, and
	// close (when the run's context ends) closes it from elsewhere.
	mu     sync.Mutex
	conn   net.Conn
	closed bool

	br       *bufio.Reader // reads conn; owned by the publisher
	req      []byte        // the request being sent, reused
	deadline time.Time     // conn's deadline; owned by the publisher
	lastUsed time.Time     // when conn last answered; owned by the publisher
	// idleCheck is how long conn may stay idle before a request checks
	// that the server has not closed it meanwhile.
	idleCheck time.Duration
}

// publishIdleCheck is publishConn.idleCheck: at high rates no request pays
// for the check, at low ones a publish is not lost to a server's (or a
// proxy's) idle timeout, which the Transport notices while idle.
const publishIdleCheck = time.Second

func newPublishConn(base *url.URL, key string) *publishConn {
	return &publishConn{
		base: base, host: base.Host, auth: "Bearer " + key, prefix: strings.TrimRight(base.Path, "/"),
		idleCheck: publishIdleCheck,
	}
}

func (c *publishConn) publish(ctx context.Context, app, topic string, message []byte) error {
	path := c.prefix + "/v1/apps/" + url.PathEscape(app) + "/topics/" + url.PathEscape(topic) + "/messages"
	return c.post(ctx, path, message)
}

func (c *publishConn) publishBatch(ctx context.Context, app string, msgs []client.BatchMessage) error {
	// What client.Client.PublishBatch sends.
	body, err := json.Marshal(map[string]any{"messages": msgs})
	if err != nil {
		return fmt.Errorf("herald: encode batch: %w", err)
	}
	return c.post(ctx, c.prefix+"/v1/apps/"+url.PathEscape(app)+"/messages", body)
}

// post sends a POST of body to path and reads the answer: nil for a 202,
// the answer's error (client.ResponseError) for another status.
func (c *publishConn) post(ctx context.Context, path string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	if time.Since(c.lastUsed) > c.idleCheck && c.closedByServer(conn) {
		c.drop(conn)
		if conn, err = c.connect(ctx); err != nil {
			return err
		}
	}
	// Moved on every few seconds rather than set per request: a deadline
	// costs a timer update, and a bound of 25 to 30 s is as good as 30.
	if now := time.Now(); c.deadline.Sub(now) < publishTimeout-5*time.Second {
		c.deadline = now.Add(publishTimeout)
		if err := conn.SetDeadline(c.deadline); err != nil {
			return c.fail(conn, err)
		}
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\nAuthorization: "...)
	c.req = append(c.req, c.auth...)
	c.req = append(c.req, "\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"...)
	c.req = append(c.req, body...)
	if _, err := conn.Write(c.req); err != nil {
		return c.fail(conn, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return c.fail(conn, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		err = client.ResponseError(resp)
	}
	// The rest of the body, so that the connection is ready for the next.
	if _, cerr := io.Copy(io.Discard, resp.Body); cerr != nil || resp.Close {
		c.drop(conn)
	}
	c.lastUsed = time.Now()
	return err
}

// closedByServer reports whether conn, idle between requests, has been
// closed by the server (or was sent something unasked), without waiting.
func (c *publishConn) closedByServer(conn net.Conn) bool {
	return c.br.Buffered() > 0 || peerClosed(conn)
}

// connect returns the connection, dialling it if there is none.
func (c *publishConn) connect(ctx context.Context) (net.Conn, error) {
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if closed {
		return nil, net.ErrClosed
	}
	if conn != nil {
		return conn, nil
	}
	dctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	conn, err := dialNode(dctx, c.base)
	if err != nil {
		return nil, fmt.Errorf("connect publisher: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.Close()
		return nil, net.ErrClosed
	}
	c.conn, c.deadline = conn, time.Time{}
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4<<10)
	} else {
		c.br.Reset(conn)
	}
	return conn, nil
}

// fail drops conn after err and returns err.
func (c *publishConn) fail(conn net.Conn, err error) error {
	c.drop(conn)
	return err
}

// drop closes conn, so that the next request dials anew.
func (c *publishConn) drop(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.conn = nil
	}
	_ = conn.Close()
}

// close closes the connection for good: a request waiting on it ends with
// an error, and none is sent after.
func (c *publishConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// publishSenders are one publisher's senders, one per node: a
// publishConn for a plain http node (dialled when first used), the SDK's
// client for https.
type publishSenders struct {
	senders []publishSender
	conns   []*publishConn
}

func newPublishSenders(plan publishPlan) *publishSenders {
	s := &publishSenders{senders: make([]publishSender, len(plan.clients))}
	for node, c := range plan.clients {
		if base := plan.bases[node]; base.Scheme == "http" {
			pc := newPublishConn(base, plan.key)
			s.conns = append(s.conns, pc)
			s.senders[node] = pc
		} else {
			s.senders[node] = sdkSender{c}
		}
	}
	return s
}

// close closes every connection: a request waiting on one ends with an
// error, and none is sent after. It may be called from any goroutine.
func (s *publishSenders) close() {
	for _, c := range s.conns {
		c.close()
	}
}

var (
	_ publishSender = sdkSender{}
	_ publishSender = (*publishConn)(nil)
)
