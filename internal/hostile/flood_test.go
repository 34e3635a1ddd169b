package hostile_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/hostile"
)

// TestConnectionFloodLeavesEveryoneElseAnswered opens ten times as many
// connections as the server allows, and sends nothing on them. The server
// makes room by closing the oldest idle ones, so /healthz and a publish
// are answered meanwhile, and the history holds what was published.
func TestConnectionFloodLeavesEveryoneElseAnswered(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = 16
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	conns, failed := hostile.Flood(t.Context(), 10*cfg.MaxConnections, func(ctx context.Context) (net.Conn, error) {
		return hostile.SlowBody(ctx, srv.Addr(), "/", "", hostile.Idle)
	})
	defer hostile.CloseAll(conns)
	require.Zero(t, failed)

	requireHealthy(t, srv)
	requirePublishes(t, app, "t", `1`)
	requirePublishes(t, app, "t", `2`)
	requireHistory(t, app, "t", `1`, `2`)
}

// TestStreamsPastTheCapAreRefused fills a node with event streams: past
// its cap (MaxConnections less an eighth) a stream is refused with 503,
// Retry-After and too_many_streams, while publishes still get through and
// reach the streams; once a stream ends, a new one is taken.
func TestStreamsPastTheCapAreRefused(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.MaxConnections = 8                 // 7 streams
	cfg.Heartbeat = 100 * time.Millisecond // a closed stream is noticed at its next write
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	url := srv.URL + "/v1/apps/" + app.ID + "/topics/t/events"

	open := func() *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+app.SubscribeKey)
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		return resp
	}
	var streams []*http.Response
	defer func() {
		for _, s := range streams {
			s.Body.Close()
		}
	}()
	for range 7 {
		resp := open()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		streams = append(streams, resp)
	}
	resp := open()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	var body struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, "too_many_streams", body.Error.Code)

	id := requirePublishes(t, app, "t", `{"to":"all"}`)
	for _, s := range streams {
		requireFrameWithID(t, s, id)
	}

	streams[0].Body.Close()
	streams = streams[1:]
	deadline := time.Now().Add(patience)
	for {
		resp := open()
		if resp.StatusCode == http.StatusOK {
			streams = append(streams, resp)
			break
		}
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.True(t, time.Now().Before(deadline), "a stream's slot was never given back")
	}
}

// requireFrameWithID reads a stream until a frame with this id.
func requireFrameWithID(t *testing.T, resp *http.Response, id string) {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.TrimPrefix(sc.Text(), "id: ") == id {
			return
		}
	}
	require.Fail(t, "the stream ended before the event", "%v", sc.Err())
}
