package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/httpapi"
)

// serveWatched serves b's API on a server of its own whose closed
// connections are reported on the returned channel.
func serveWatched(t *testing.T, b *testBundle) (url string, closed <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(b.api)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			ch <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// TestAnswerTheClientDoesNotReadIsCut asks for a page of history far
// larger than the socket buffers and never reads it: the server must give
// up on the answer after the write timeout and close the connection,
// instead of holding its handler and connection for as long as the client
// likes.
func TestAnswerTheClientDoesNotReadIsCut(t *testing.T) {
	b := setup(t, apiOptions{config: func(c *httpapi.Config) { c.WriteTimeout = 300 * time.Millisecond }})
	// 200 messages of 60 KB: 12 MB, well past what the kernel buffers for
	// a connection nobody reads (a few MB on loopback).
	msg := `{"pad":"` + strings.Repeat("a", 60_000) + `"}`
	for range 200 {
		a := b.do(t, http.MethodPost, "/v1/apps/"+b.app+"/topics/"+testTopic+"/messages", strings.NewReader(msg), bearer(b.full))
		require.Equal(t, http.StatusAccepted, a.status, a.body)
	}
	url, closed := serveWatched(t, b)

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /v1/apps/%s/topics/%s/messages?limit=200 HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\n\r\n", b.app, testTopic, b.full)
	require.NoError(t, err)

	// Not read until the server has closed the connection; a hang guard,
	// not a timing: without a write deadline the server never closes it.
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the server still holds a connection whose client has not read its answer for 30 s")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the answer's head went out before the client stopped reading")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	n, err := io.Copy(io.Discard, resp.Body)
	require.Error(t, err, "the answer must be cut short, not complete (%d bytes read)", n)
	assert.Less(t, n, int64(200*60_000), "the answer must be cut short")
}

// TestAnswerDeadlineDoesNotOutliveTheAnswer sends, on one keep-alive
// connection, an answer that sets a write deadline and then, after that
// deadline has passed, requests whose answers do not set one of their own
// (the OpenAPI document, a stream): each must be served whole.
func TestAnswerDeadlineDoesNotOutliveTheAnswer(t *testing.T) {
	const timeout = 200 * time.Millisecond
	b := setup(t, apiOptions{config: func(c *httpapi.Config) { c.WriteTimeout = timeout }})
	url, _ := serveWatched(t, b)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func(path string) *http.Response {
		t.Helper()
		_, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\n\r\n", path, b.full)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		return resp
	}

	resp := get("/healthz")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	time.Sleep(2 * timeout) // the deadline /healthz's answer set is now past

	resp = get("/openapi.json")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "an answer without a deadline of its own must not inherit a past one")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	time.Sleep(2 * timeout)

	// A stream on the same connection: its events must arrive.
	resp = get("/v1/apps/" + b.app + "/topics/" + testTopic + "/events")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	a := b.do(t, http.MethodPost, "/v1/apps/"+b.app+"/topics/"+testTopic+"/messages", strings.NewReader(`{"n":1}`), bearer(b.full))
	require.Equal(t, http.StatusAccepted, a.status, a.body)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"n":1`) {
			return
		}
	}
	t.Fatalf("the stream ended before its event: %v", sc.Err())
}
