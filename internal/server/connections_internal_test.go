package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStalledBodyOfAClientThatDoesNotReadIsCut holds the only connection
// of a limit of one with a request whose body stalls, from a client that
// reads nothing: its handler first fills the connection's send buffer
// (beneath the response, so nothing of the response counts as written),
// then waits for the body. A second connection makes the listener close
// the first to make room, answering it 408 if it can: the answer cannot
// be written, yet the connection is closed all the same and its handler
// released, while the client still reads nothing, and the second request
// is served. Everything is waited for with a hang guard only.
func TestStalledBodyOfAClientThatDoesNotReadIsCut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := newConnLimit(ln, 1)

	const patience = 90 * time.Second
	filled := make(chan struct{})
	bodyErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stall", func(_ http.ResponseWriter, r *http.Request) {
		lc, ok := r.Context().Value(connKey{}).(*limitedConn)
		if !ok {
			bodyErr <- errors.New("the request's connection is not the listener's")
			return
		}
		junk := make([]byte, 64<<10)
		for {
			// Until a write makes no progress at all: the client's
			// window and this side's buffer are full.
			_ = lc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := lc.Conn.Write(junk); err != nil && n == 0 {
				break
			}
		}
		_ = lc.SetWriteDeadline(time.Time{})
		close(filled)
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	})
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	srv := &http.Server{Handler: l.watchBodies(mux), ConnContext: withConn, ConnState: l.track, ReadHeaderTimeout: patience}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})

	stalled, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer stalled.Close()
	_, err = io.WriteString(stalled, "POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
	require.NoError(t, err)
	select {
	case <-filled:
	case err := <-bodyErr:
		require.NoError(t, err)
	case <-time.After(patience):
		require.Fail(t, "the handler never filled the connection")
	}

	hc := &http.Client{Timeout: patience, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + ln.Addr().String() + "/ok")
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "ok", string(got), "the second connection was served")

	select {
	case err := <-bodyErr:
		require.ErrorIs(t, err, errBodyEvicted, "the stalled body's read ended as taken to make room")
	case <-time.After(patience):
		require.Fail(t, "the stalled connection was never cut: its handler still waits")
	}

	// Only now does the client read: the junk, then the end.
	require.NoError(t, stalled.SetReadDeadline(time.Now().Add(patience)))
	_, err = io.Copy(io.Discard, bufio.NewReader(stalled))
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the connection was closed")
}
