package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe to write from the program and read from
// the test at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIEndToEnd runs `herald serve` on a fresh data directory with no
// admin token configured, then drives it with the other subcommands, which
// find the generated token in the data directory, as a newcomer would.
func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"HERALD_DATA_DIR": dir, "HERALD_ADDR": "127.0.0.1:0", "HERALD_LOG_FORMAT": "json"}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(context.Background())
	var serveOut, serveErr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, &serveOut, &serveErr) }()
	var addr string
	require.Eventually(t, func() bool {
		for line := range strings.Lines(serveErr.String()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "herald ready" {
				addr = rec.Addr
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	require.Contains(t, serveOut.String(), "admin token (generated")

	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"app", "create", "--url", addr, "shop"}, getenv, &stdout, io.Discard))
	var app struct {
		ID   string
		Keys []struct{ Key string }
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &app))
	require.Len(t, app.Keys, 2)
	key := app.Keys[0].Key

	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		require.NoError(t, run(t.Context(), args, getenv, &out, &errOut), errOut.String())
		return out.String()
	}
	require.Contains(t, runOK("topic", "create", "--url", addr, app.ID, "orders"), "created topic orders")
	require.Contains(t, runOK("app", "list", "--url", addr), "shop")

	tailCtx, stopTail := context.WithCancel(t.Context())
	var tailOut syncBuffer
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- run(tailCtx, []string{"tail", "--url", addr, "--token", key, app.ID, "orders"}, getenv, &tailOut, io.Discard)
	}()
	require.Eventually(t, func() bool {
		for line := range strings.Lines(runOK("topic", "list", "--url", addr, app.ID)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "orders" && f[2] == "1" {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, runOK("publish", "--url", addr, "--token", key, app.ID, "orders", `{"n": 1}`), "id 1")
	require.Eventually(t, func() bool {
		return strings.Contains(tailOut.String(), "orders\t1\t{\"n\":1}")
	}, 10*time.Second, 10*time.Millisecond)
	stopTail()
	require.NoError(t, <-tailDone)

	// A batch from NDJSON: one request, all or nothing, line numbers in
	// errors.
	batch := filepath.Join(t.TempDir(), "batch.ndjson")
	require.NoError(t, os.WriteFile(batch, []byte("{\"topic\":\"orders\",\"message\":{\"n\":2}}\n\n{\"topic\":\"orders\",\"message\":3,\"idempotency_key\":\"k\"}\n"), 0o600))
	out := runOK("publish", "--url", addr, "--token", key, "--batch", batch, app.ID)
	require.Contains(t, out, "orders\t2\n")
	require.Contains(t, out, "orders\t3\n")
	require.Contains(t, out, "published 2 messages")
	require.NoError(t, os.WriteFile(batch, []byte("{\"topic\":\"orders\",\"message\":4}\n{\"topic\":\"ghost\",\"message\":5}\n"), 0o600))
	err := run(t.Context(), []string{"publish", "--url", addr, "--token", key, "--batch", batch, app.ID}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, "topic_not_found")
	require.NoError(t, os.WriteFile(batch, []byte("{\"topic\":\"orders\"}\n"), 0o600))
	err = run(t.Context(), []string{"publish", "--url", addr, "--token", key, "--batch", batch, app.ID}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "line 1")
	require.Contains(t, runOK("publish", "--url", addr, "--token", key, app.ID, "orders", `4`), "id 4", "no failed batch took an id")

	err = run(t.Context(), []string{"publish", "--url", addr, "--token", key, app.ID, "orders", `{bad`}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "invalid_request")
	require.ErrorIs(t, run(t.Context(), []string{"nope"}, getenv, io.Discard, io.Discard), errUsage)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "serve exits cleanly on cancel")
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not shut down")
	}
	require.Contains(t, serveErr.String(), "shutdown complete")
}
