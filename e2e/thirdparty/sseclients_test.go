package thirdparty_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	ldes "github.com/launchdarkly/eventsource"
	r3sse "github.com/r3labs/sse/v2"
	"github.com/stretchr/testify/require"
	gosse "github.com/tmaxmax/go-sse"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// received is one message as a client library handed it to its user.
type received struct {
	ID   string `json:"id"`
	Data string `json:"data"`
}

// follower starts a client library on a stream URL and returns the messages
// it hands to its user; it stops the library when the test ends.
type follower func(t *testing.T, url string) <-chan received

// What each library does at a clean end of stream (a graceful shutdown of
// the server) is part of what the README says about it: all of these but
// r3labs/sse reconnect by themselves, and fetch-event-source only because
// its onclose throws (sse.mjs).
func TestSSEClientLibrariesResumeAcrossRestarts(t *testing.T) {
	t.Parallel()
	libs := []struct {
		name   string
		follow follower
	}{
		{"npm/eventsource", nodeFollower("eventsource")},
		{"npm/extended-eventsource", nodeFollower("extended-eventsource")},
		{"npm/event-source-polyfill", nodeFollower("event-source-polyfill")},
		{"npm/@microsoft/fetch-event-source", nodeFollower("@microsoft/fetch-event-source")},
		{"go/r3labs/sse", followR3labs},
		{"go/tmaxmax/go-sse", followGoSSE},
		{"go/launchdarkly/eventsource", followLaunchDarkly},
	}
	for _, lib := range libs {
		t.Run(lib.name, func(t *testing.T) {
			t.Parallel()
			resumeAcrossRestarts(t, lib.follow)
		})
	}
}

// resumeAcrossRestarts follows a topic with a library, restarts the server
// before the first message (the library can resume only from the start
// event's id) and again after it, publishing while the library reconnects,
// and requires every message exactly once, in order.
func resumeAcrossRestarts(t *testing.T, follow follower) {
	t.Helper()
	srv := heraldtest.Start(t, heraldtest.Config(t))
	app := srv.NewApp(t, "t")
	// Libraries that cannot send headers take the key as ?access_token=.
	got := follow(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events?access_token="+url.QueryEscape(app.SubscribeKey))
	waitSubscribers(t, app, 1)

	publish := func(c *client.Client, body string) {
		t.Helper()
		_, err := c.Publish(t.Context(), app.ID, "t", []byte(body))
		require.NoError(t, err)
	}
	// restart stops the server and starts it again on its address, after
	// publishing body through another server on the same data directory:
	// the library cannot have reconnected in time to receive it live.
	restart := func(body string) {
		t.Helper()
		require.NoError(t, srv.Stop())
		cfg := srv.Config
		other := heraldtest.Start(t, cfg)
		publish(client.New(other.URL, app.FullKey), body)
		require.NoError(t, other.Stop())
		cfg.Addr = srv.Addr()
		srv = heraldtest.Start(t, cfg)
	}
	expect := func(id, body string) {
		t.Helper()
		select {
		case m := <-got:
			require.Equal(t, id, m.ID, "message %s (got %s)", id, m.Data)
			var ev struct{ Message json.RawMessage }
			require.NoError(t, json.Unmarshal([]byte(m.Data), &ev))
			require.JSONEq(t, body, string(ev.Message))
		case <-time.After(60 * time.Second):
			require.Failf(t, "message lost", "message %s never arrived", id)
		}
	}

	// Before the first message: the library knows only the start event.
	restart(`"while reconnecting"`)
	expect("1", `"while reconnecting"`)

	// After it.
	restart(`"after the second restart"`)
	expect("2", `"after the second restart"`)
	publish(app.Full, `"live"`)
	expect("3", `"live"`) // and nothing twice before it
}

func waitSubscribers(t *testing.T, app heraldtest.App, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTopics(t.Context(), app.ID)
		require.NoError(t, err)
		return ts[0].Subscribers == n
	}, 60*time.Second, 20*time.Millisecond)
}

// nodeFollower runs the npm library lib in sse.mjs, which prints each
// message it receives as a line of JSON.
func nodeFollower(lib string) follower {
	return func(t *testing.T, u string) <-chan received {
		t.Helper()
		_, err := os.Stat("node_modules/" + lib)
		require.NoError(t, err, "the npm packages of e2e/thirdparty are not installed: ./scripts/test installs them (npm ci in e2e/thirdparty)")
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, "node", "sse.mjs", lib, u)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		ch := make(chan received, 16)
		var wg sync.WaitGroup
		wg.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var m received
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Errorf("sse.mjs printed %q: %v", sc.Text(), err)
					continue
				}
				select {
				case ch <- m:
				case <-ctx.Done():
					return
				}
			}
		})
		t.Cleanup(func() {
			cancel()
			wg.Wait()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("node sse.mjs %s stderr:\n%s", lib, stderr.String())
			}
		})
		return ch
	}
}

// goFollower runs follow in a goroutine until the test ends; follow hands
// messages to deliver, which gives up once ctx ends.
func goFollower(t *testing.T, follow func(ctx context.Context, deliver func(received))) <-chan received {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan received, 16)
	deliver := func(m received) {
		if m.Data == "" {
			return // r3labs and launchdarkly hand over the retry: and comment block as an empty event
		}
		select {
		case ch <- m:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { follow(ctx, deliver) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

// followR3labs: SubscribeRawWithContext returns nil at a clean end of stream
// instead of reconnecting, so the caller subscribes again; the Client keeps
// the last id (the start event's, before any message) and sends it.
func followR3labs(t *testing.T, u string) <-chan received {
	t.Helper()
	return goFollower(t, func(ctx context.Context, deliver func(received)) {
		c := r3sse.NewClient(u)
		// Its default backoff outlives ctx.
		c.ReconnectStrategy = backoff.WithContext(backoff.NewExponentialBackOff(), ctx)
		for ctx.Err() == nil {
			_ = c.SubscribeRawWithContext(ctx, func(ev *r3sse.Event) {
				if len(ev.Event) == 0 {
					deliver(received{ID: string(ev.ID), Data: string(ev.Data)})
				}
			})
		}
	})
}

// followGoSSE: Connect reconnects by itself, after errors and clean ends.
func followGoSSE(t *testing.T, u string) <-chan received {
	t.Helper()
	return goFollower(t, func(ctx context.Context, deliver func(received)) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conn := gosse.NewConnection(req)
		conn.SubscribeMessages(func(ev gosse.Event) { deliver(received{ID: ev.LastEventID, Data: ev.Data}) })
		_ = conn.Connect() // returns once ctx ends
	})
}

// followLaunchDarkly: the Stream reconnects by itself; errors go to the
// handler, which keeps it going.
func followLaunchDarkly(t *testing.T, u string) <-chan received {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	require.NoError(t, err)
	s, err := ldes.SubscribeWithRequestAndOptions(req,
		ldes.StreamOptionErrorHandler(func(error) ldes.StreamErrorHandlerResult { return ldes.StreamErrorHandlerResult{} }))
	require.NoError(t, err)
	return goFollower(t, func(ctx context.Context, deliver func(received)) {
		stop := context.AfterFunc(ctx, s.Close)
		defer stop()
		for ev := range s.Events {
			if ev.Event() == "" || ev.Event() == "message" {
				deliver(received{ID: ev.Id(), Data: ev.Data()})
			}
		}
	})
}
