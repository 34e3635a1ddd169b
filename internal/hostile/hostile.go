// Package hostile speaks HTTP the way an attacker would, to test that a
// Herald server stays up for everyone else: bodies that never finish,
// floods of connections, smuggling shapes. It writes raw bytes on TCP, as
// no well-behaved client library would let a test do. It is used by the
// hostile-client tests and by cmd/attack, which measures the same attacks
// against a running server.
package hostile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Shape is the shape of a request body that never finishes.
type Shape string

// The slow-body shapes.
const (
	// Chunked sends one chunk of a chunked body, then nothing.
	Chunked Shape = "chunked"
	// ShortLength declares Content-Length: 1000 and sends 1 byte.
	ShortLength Shape = "short-length"
	// Idle opens the connection and sends nothing at all.
	Idle Shape = "idle"
)

// SlowBody opens a connection to addr and sends a POST to path whose body
// never finishes, with key as its bearer token (none if empty); with the
// Idle shape it sends nothing. The connection is left open for the caller
// to read from or close.
func SlowBody(ctx context.Context, addr, path, key string, shape Shape) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if shape == Idle {
		return c, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, addr)
	if key != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", key)
	}
	switch shape {
	case Chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
	case ShortLength:
		b.WriteString("Content-Length: 1000\r\n\r\n{")
	default:
		c.Close()
		return nil, fmt.Errorf("unknown shape %q", shape)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		c.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	return c, nil
}

// Flood opens n slow-body connections at once and returns those that
// opened. Dials that fail (the server or the kernel refusing) are counted
// in failed, not returned as an error: a flood is expected to meet limits.
func Flood(ctx context.Context, n int, open func(ctx context.Context) (net.Conn, error)) (conns []net.Conn, failed int) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	sem := make(chan struct{}, 64) // dial in waves: the attack is the holding, not the dialing
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := open(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	return conns, failed
}

// CloseAll closes every connection.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// ReadStatus reads the status line and headers of the response on c,
// waiting at most until deadline, and reports whether the server then
// closed the connection (read to EOF within the deadline). A
// connection that was closed or reset without an answer gives an error.
func ReadStatus(c net.Conn, deadline time.Time) (resp *http.Response, closed bool, err error) {
	resp, _, closed, err = ReadAnswer(c, deadline)
	return resp, closed, err
}

// ReadAnswer is ReadStatus, also returning the response's body (what
// came before the deadline, or before the connection was reset).
func ReadAnswer(c net.Conn, deadline time.Time) (resp *http.Response, body []byte, closed bool, err error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, nil, false, err
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read response: %w", err)
	}
	body, _ = io.ReadAll(resp.Body)
	_, err = io.Copy(io.Discard, br) // then EOF if the server closes
	resp.Body.Close()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return resp, body, false, nil
	}
	return resp, body, true, nil
}

// Time reports how long one GET of url took with a fresh connection, or
// the error that ended it; timeout bounds it.
func Time(ctx context.Context, url string, timeout time.Duration) (time.Duration, int, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return time.Since(start), 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode, nil
}
