package hostile_test

import (
	"context"
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
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = 24
	cfg.ReadTimeout = time.Hour
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	path := "/v1/apps/" + app.ID + "/topics/t/messages"

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

	// The server closed stalled bodies to make room, without an answer:
	// the second wave needed more room than the first wave's survivors
	// held, and they were waiting longer than any of it. Each connection
	// is read at once, under one shared hang guard.
	var (
		cut atomic.Int64
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(patience)
	for _, c := range conns {
		wg.Go(func() {
			_, _, err := hostile.ReadStatus(c, deadline)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				cut.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d of the first wave's %d connections were closed to make room", cut.Load(), n)
	require.GreaterOrEqual(t, int(cut.Load()), n-cfg.MaxConnections, "the connections past the cap were closed by the server")
}
