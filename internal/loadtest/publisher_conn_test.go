package loadtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
)

// seenRequest is what a test server saw of one request.
type seenRequest struct {
	method, uri, proto string
	header             http.Header
	body               string
}

// recordingServer answers every request with answer and records what it
// saw, and counts the connections it accepted.
type recordingServer struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []seenRequest // guarded by mu
	conns atomic.Int32
}

func newRecordingServer(t *testing.T, answer http.HandlerFunc) *recordingServer {
	t.Helper()
	rs := &recordingServer{}
	rs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{r.Method, r.RequestURI, r.Proto, r.Header.Clone(), string(b)})
		rs.mu.Unlock()
		answer(w, r)
	}))
	rs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			rs.conns.Add(1)
		}
	}
	rs.Start()
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingServer) requests() []seenRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]seenRequest(nil), rs.seen...)
}

func accepted(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"1","topic":"t","published_at":"2026-01-01T00:00:00.000000Z"}`+"\n")
}

func testPublishConn(t *testing.T, rawURL string) *publishConn {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	c := newPublishConn(u, "k_secret")
	t.Cleanup(c.close)
	return c
}

// TestPublishConnSendsWhatTheSDKSends checks the server sees the same
// request from a publishConn as from the SDK's client, single and batch:
// the bench's cheaper client must not make the server's work lighter.
func TestPublishConnSendsWhatTheSDKSends(t *testing.T) {
	t.Parallel()
	rs := newRecordingServer(t, accepted)
	sdk := client.New(rs.URL+"/base/", "k_secret")
	pc := testPublishConn(t, rs.URL+"/base/")
	msg := []byte(`{"seq":1,"t":2,"pad":"xx"}`)
	batch := []client.BatchMessage{{Topic: "a", Message: msg}, {Topic: "b", Message: msg}}

	_, err := sdk.Publish(t.Context(), "app_1", "orders", msg)
	require.NoError(t, err)
	require.NoError(t, pc.publish(t.Context(), "app_1", "orders", msg))
	_, err = sdk.PublishBatch(t.Context(), "app_1", batch)
	require.NoError(t, err)
	require.NoError(t, pc.publishBatch(t.Context(), "app_1", batch))

	seen := rs.requests()
	require.Len(t, seen, 4)
	require.Equal(t, "/base/v1/apps/app_1/topics/orders/messages", seen[0].uri)
	require.Equal(t, string(msg), seen[0].body)
	require.Equal(t, "HTTP/1.1", seen[0].proto)
	require.Equal(t, seen[0], seen[1], "single publish")
	require.Equal(t, "/base/v1/apps/app_1/messages", seen[2].uri)
	require.Equal(t, seen[2], seen[3], "batch publish")
	require.EqualValues(t, 2, rs.conns.Load(), "the publishConn kept its one connection alive")
}

// TestPublishConnErrorAnswers checks an error answer comes back as the
// SDK's *client.Error, and that the connection is reused after it, but
// dialled anew after an answer that closes it.
func TestPublishConnErrorAnswers(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	rs := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"topic_not_found","message":"no topic \"t\""}}`)
		case 2:
			w.Header().Set("Connection", "close")
			accepted(w, r)
		default:
			accepted(w, r)
		}
	})
	pc := testPublishConn(t, rs.URL)
	err := pc.publish(t.Context(), "app_1", "t", []byte(`{}`))
	var herr *client.Error
	require.ErrorAs(t, err, &herr)
	require.Equal(t, http.StatusNotFound, herr.Status)
	require.Equal(t, "topic_not_found", herr.Code)
	require.EqualValues(t, 1, rs.conns.Load())

	require.NoError(t, pc.publish(t.Context(), "app_1", "t", []byte(`{}`)), "the connection serves on after an error answer")
	require.EqualValues(t, 1, rs.conns.Load())
	require.NoError(t, pc.publish(t.Context(), "app_1", "t", []byte(`{}`)), "a closed connection is dialled again")
	require.EqualValues(t, 2, rs.conns.Load())
	require.Len(t, rs.requests(), 3)
}

// TestPublishConnClose checks close ends a request waiting for its
// answer, and refuses any after it.
func TestPublishConnClose(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	rs := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	})
	defer close(release) // before rs.Close, which waits for the handler
	pc := testPublishConn(t, rs.URL)
	done := make(chan error, 1)
	go func() { done <- pc.publish(context.Background(), "app_1", "t", []byte(`{}`)) }()
	<-arrived
	pc.close()
	require.Error(t, <-done)
	require.ErrorIs(t, pc.publish(t.Context(), "app_1", "t", []byte(`{}`)), net.ErrClosed)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.True(t, errors.Is(testPublishConn(t, rs.URL).publish(ctx, "a", "t", nil), context.Canceled))
}

// TestPublishConnAfterTheServerClosedIt checks a publish on a connection
// the server closed while it was idle (its idle timeout) goes out on a new
// one instead of failing.
func TestPublishConnAfterTheServerClosedIt(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	// The server answers one request per connection, keeping it alive,
	// then closes it as an idle timeout would, and says so on closed.
	closed := make(chan int, 2)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { _ = ln.Close() }) // first: it ends the Accept
	wg.Go(func() {
		for n := 1; n <= 2; n++ {
			conn, err := ln.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err == nil {
				_, err = io.Copy(io.Discard, req.Body)
			}
			if err == nil {
				_, err = io.WriteString(conn, "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
			}
			if err != nil {
				t.Error(err)
			}
			_ = conn.Close()
			closed <- n
		}
	})
	pc := testPublishConn(t, "http://"+ln.Addr().String())
	pc.idleCheck = 0
	require.NoError(t, pc.publish(t.Context(), "app_1", "t", []byte(`1`)))
	require.Equal(t, 1, <-closed)
	require.NoError(t, pc.publish(t.Context(), "app_1", "t", []byte(`2`)), "sent again on a new connection")
	require.Equal(t, 2, <-closed)
}
