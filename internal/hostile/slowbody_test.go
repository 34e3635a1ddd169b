package hostile_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/hostile"
)

// TestSlowBodiesLeaveEveryoneElseAnswered holds many connections whose
// request bodies never finish (one chunk then silence; a Content-Length
// never met), with no key, a wrong key and a valid one, against a server
// allowing far fewer connections than the attack opens. Meanwhile /healthz
// and a publish with a valid key are answered; the connections without a
// valid key get their 401 and are closed without the body; those with one
// time out with 408 (or, past the cap, were closed to make room before they
// were read); and nothing of theirs was stored.
func TestSlowBodiesLeaveEveryoneElseAnswered(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = 24
	cfg.ReadTimeout = 2 * time.Second
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	path := "/v1/apps/" + app.ID + "/topics/t/messages"
	addr := srv.Addr()

	keys := []string{"", "hk_not-a-key", app.FullKey}
	shapes := []hostile.Shape{hostile.Chunked, hostile.ShortLength}
	const n = 120
	type attacker struct {
		conn net.Conn
		key  string
	}
	attackers := make(chan attacker, n)
	var i atomic.Int64
	conns, failed := hostile.Flood(t.Context(), n, func(ctx context.Context) (net.Conn, error) {
		// Flood runs these at once: the index picks the shape and key.
		j := int(i.Add(1))
		k := keys[j%len(keys)]
		sh := shapes[(j/len(keys))%len(shapes)]
		c, err := hostile.SlowBody(ctx, addr, path, k, sh)
		if err == nil {
			attackers <- attacker{c, k}
		}
		return c, err
	})
	defer hostile.CloseAll(conns)
	close(attackers)
	require.Zero(t, failed, "the kernel's backlog takes the flood")

	requireHealthy(t, srv)
	id := requirePublishes(t, app, "t", `{"ok":true}`)
	require.NotEmpty(t, id)

	deadline := time.Now().Add(patience)
	for a := range attackers {
		resp, closed, err := hostile.ReadStatus(a.conn, deadline)
		if err != nil {
			// Past the cap the server closed it before reading a byte,
			// to make room (it was the oldest without a request yet).
			require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
			continue
		}
		if a.key == app.FullKey {
			require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "a valid key's body that never ends times out")
		} else {
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		require.True(t, resp.Close, "the answer says Connection: close")
		require.True(t, closed, "the server closed the connection")
	}
	requireHealthy(t, srv)
	requireHistory(t, app, "t", `{"ok":true}`)
}

// TestSlowBodiesWithAValidKeyLeaveEveryoneElseAnswered holds many more
// connections than the server takes, each a publish with a valid key whose
// body never finishes. Such a body passed authentication, so nothing
// answers it before the read timeout, which the test sets far beyond its
// patience: the only way /healthz and a publish get in is that the
// server closes stalled bodies to make room for them. Times are logged,
// not asserted.
func TestSlowBodiesWithAValidKeyLeaveEveryoneElseAnswered(t *testing.T) {
	t.Parallel()
	const maxConns = 24
	srv, app, path := startNoReadTimeout(t, maxConns)

	const n = 400
	var i atomic.Int64
	conns, failed := hostile.Flood(t.Context(), n, func(ctx context.Context) (net.Conn, error) {
		sh := []hostile.Shape{hostile.Chunked, hostile.ShortLength}[i.Add(1)%2]
		return hostile.SlowBody(ctx, srv.Addr(), path, app.FullKey, sh)
	})
	defer hostile.CloseAll(conns)
	require.Zero(t, failed, "the kernel's backlog takes the flood")

	start := time.Now()
	requireHealthy(t, srv)
	t.Logf("first /healthz answered %s after %d stalled valid-key bodies were sent", time.Since(start).Round(time.Millisecond), n)
	start = time.Now()
	requirePublishes(t, app, "t", `{"ok":true}`)
	t.Logf("then a publish with a valid key in %s", time.Since(start).Round(time.Millisecond))

	// A second wave finds the slots held by the first wave's survivors
	// and the two probes' kept-alive connections: it is let in too.
	more, failed := hostile.Flood(t.Context(), n, func(ctx context.Context) (net.Conn, error) {
		return hostile.SlowBody(ctx, srv.Addr(), path, app.FullKey, hostile.Chunked)
	})
	defer hostile.CloseAll(more)
	require.Zero(t, failed)
	requireHealthy(t, srv)
	requirePublishes(t, app, "t", `{"ok":2}`)
	requireHistory(t, app, "t", `{"ok":true}`, `{"ok":2}`)

	// The server closed stalled bodies to make room: the second wave
	// needed more room than the first wave's survivors held, and they
	// were waiting longer than any of it. Each was answered 408 first,
	// or, if its request had not been read yet or too many were being
	// answered at once, closed without an answer. The read timeout is an
	// hour: every 408 is one of those answers. Each connection is read
	// at once, under one shared hang guard.
	var (
		cut, answered atomic.Int64
		wg            sync.WaitGroup
	)
	deadline := time.Now().Add(patience)
	for _, c := range conns {
		wg.Go(func() {
			resp, body, closed, err := hostile.ReadAnswer(c, deadline)
			switch {
			case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
				cut.Add(1)
			case err == nil:
				requireMadeRoom(t, resp, body, closed)
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("of the first wave's %d connections, %d were answered 408 and %d closed unanswered to make room", n, answered.Load(), cut.Load())
	require.GreaterOrEqual(t, int(answered.Load()+cut.Load()), n-maxConns, "the connections past the cap were closed by the server")
}

// TestStalledBodyClosedToMakeRoomIsAnswered holds the only connection a
// server takes with a publish whose body stalls, then asks for /healthz:
// the stalled body is closed to make room, and answered 408
// request_timeout first, with Connection: close and the JSON error body,
// well before its read timeout (an hour). The server may get the
// connection for /healthz before it has read the stalled request's
// headers; the connection is then closed unanswered, as one without a
// request, and the test tries again.
func TestStalledBodyClosedToMakeRoomIsAnswered(t *testing.T) {
	t.Parallel()
	srv, app, path := startNoReadTimeout(t, 1)

	for attempt := 1; ; attempt++ {
		shape := []hostile.Shape{hostile.Chunked, hostile.ShortLength}[attempt%2]
		c, err := hostile.SlowBody(t.Context(), srv.Addr(), path, app.FullKey, shape)
		require.NoError(t, err)
		defer c.Close()
		requireHealthy(t, srv) // one connection: the stalled body's is closed for it
		resp, body, closed, err := hostile.ReadAnswer(c, time.Now().Add(patience))
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "the stalled body was not closed to make room")
		if err == nil {
			requireMadeRoom(t, resp, body, closed)
			t.Logf("answered at attempt %d (%s)", attempt, shape)
			break
		}
		require.Less(t, attempt, 50, "never answered: %v", err)
	}
	requireHealthy(t, srv)
	requireHistory(t, app, "t")
}

// startNoReadTimeout starts a server taking maxConns connections, whose
// read timeout (an hour) answers no stalled body within the tests'
// patience, with an app, and returns the path its publishes go to.
func startNoReadTimeout(t *testing.T, maxConns int) (*heraldtest.Server, heraldtest.App, string) {
	t.Helper()
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = maxConns
	cfg.ReadTimeout = time.Hour
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	return srv, app, "/v1/apps/" + app.ID + "/topics/t/messages"
}

// requireMadeRoom asserts an answer is the 408 of a stalled body closed
// to make room.
func requireMadeRoom(t *testing.T, resp *http.Response, body []byte, closed bool) {
	t.Helper()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.True(t, resp.Close, "the answer says Connection: close")
	require.True(t, closed, "the server closed the connection")
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), "%s", body)
	require.Equal(t, "request_timeout", e.Error.Code)
	require.Contains(t, e.Error.Message, "make room")
}
