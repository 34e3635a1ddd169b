package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestTriggerAndDeadLetterCommands drives triggers and dead letters through
// the CLI against a real server: create, list, a delivery that dies, its
// redrive, delete.
func TestTriggerAndDeadLetterCommands(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookRetries = []time.Duration{10 * time.Millisecond}
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	var healthy atomic.Bool
	rcv := heraldtest.NewReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		}
	})
	getenv := func(k string) string {
		return map[string]string{"HERALD_URL": srv.URL, "HERALD_TOKEN": app.FullKey}[k]
	}
	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		require.NoError(t, run(t.Context(), args, getenv, &out, &errOut), errOut.String())
		return out.String()
	}

	var tr struct{ ID, URL, Secret, State string }
	require.NoError(t, json.Unmarshal([]byte(runOK("trigger", "create", app.ID, "orders", rcv.URL+"/hook")), &tr))
	require.True(t, strings.HasPrefix(tr.Secret, "whsec_"), "the secret is shown at creation")
	require.Equal(t, "active", tr.State)
	list := runOK("trigger", "list", app.ID, "orders")
	require.Contains(t, list, tr.ID)
	require.Contains(t, list, rcv.URL+"/hook")
	require.NotContains(t, list, tr.Secret)

	require.Contains(t, runOK("publish", "--idempotency-key", "k1", app.ID, "orders", `{"n":1}`), "published to")
	require.Contains(t, runOK("publish", "--idempotency-key", "k1", app.ID, "orders", `{"n":1}`), "already published")
	var id string
	require.Eventually(t, func() bool {
		out := runOK("dead-letters", "list", app.ID)
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) > 5 && strings.HasPrefix(f[0], "msg_") {
				require.Equal(t, []string{"orders", "1", "2", "503"}, f[1:5], line)
				require.Contains(t, line, "HTTP 503 Service Unavailable: down for maintenance")
				id = f[0]
			}
		}
		return id != ""
	}, 10*time.Second, 20*time.Millisecond)

	healthy.Store(true)
	require.Contains(t, runOK("dead-letters", "redrive", app.ID, id), "queued "+id+" again")
	require.Eventually(t, func() bool {
		for line := range strings.Lines(runOK("trigger", "list", app.ID, "orders")) {
			if f := strings.Fields(line); len(f) == 6 && f[0] == tr.ID {
				return f[1] == "active" && f[2] == "0" && f[3] == "1" && f[4] == "0"
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)

	require.Contains(t, runOK("trigger", "delete", app.ID, "orders", tr.ID), "deleted trigger "+tr.ID)
	err := run(t.Context(), []string{"trigger", "delete", app.ID, "orders", tr.ID}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "trigger_not_found")
	err = run(t.Context(), []string{"trigger", "create", app.ID, "orders", "http://10.0.0.1/hook"}, getenv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "address_refused")
	require.ErrorIs(t, run(t.Context(), []string{"trigger", "create", app.ID}, getenv, io.Discard, io.Discard), errUsage)
	require.ErrorIs(t, run(t.Context(), []string{"dead-letters", "redrive", app.ID}, getenv, io.Discard, io.Discard), errUsage)
	require.ErrorIs(t, run(t.Context(), []string{"trigger"}, getenv, io.Discard, io.Discard), errUsage)
}

// TestTriggerAdminCommands drives a trigger's life through the CLI against
// a real server and receiver: disable, enable, rotate the secret, test,
// attempts.
func TestTriggerAdminCommands(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	getenv := func(k string) string {
		return map[string]string{"HERALD_URL": srv.URL, "HERALD_TOKEN": app.FullKey}[k]
	}
	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		require.NoError(t, run(t.Context(), args, getenv, &out, &errOut), errOut.String())
		return out.String()
	}
	var tr struct{ ID, Secret string }
	require.NoError(t, json.Unmarshal([]byte(runOK("trigger", "create", app.ID, "orders", rcv.URL)), &tr))

	require.Contains(t, runOK("trigger", "disable", app.ID, "orders", tr.ID), "is disabled")
	require.Contains(t, runOK("trigger", "enable", app.ID, "orders", tr.ID), "is active")

	var rot struct {
		Secret                  string
		PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(runOK("trigger", "rotate-secret", "--overlap", "1h", app.ID, "orders", tr.ID)), &rot))
	require.True(t, strings.HasPrefix(rot.Secret, "whsec_"))
	require.NotEqual(t, tr.Secret, rot.Secret)
	require.NotNil(t, rot.PreviousSecretExpiresAt)

	out := runOK("trigger", "test", app.ID, "orders", tr.ID)
	require.Contains(t, out, `"delivered": true`)
	h := rcv.Next(t)
	require.Len(t, strings.Fields(h.Header.Get("webhook-signature")), 2, "signed with both secrets")

	out = runOK("trigger", "attempts", app.ID, "orders", tr.ID)
	require.Contains(t, out, "(test)")
	require.Contains(t, out, "204")

	var errOut bytes.Buffer
	err := run(t.Context(), []string{"trigger", "rotate-secret", "--overlap", "1000h", app.ID, "orders", tr.ID}, getenv, io.Discard, &errOut)
	require.Error(t, err)
	err = run(t.Context(), []string{"trigger", "enable", app.ID, "orders", "trg_nope"}, getenv, io.Discard, &errOut)
	require.ErrorContains(t, err, "trigger_not_found")
}
