package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// triggerOf returns the trigger id of a topic's only trigger, as listed.
func triggerOf(t *testing.T, app heraldtest.App, topic string) client.Trigger {
	t.Helper()
	ts, err := app.Full.ListTriggers(t.Context(), app.ID, topic)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	return ts[0]
}

// TestTriggerDisableEnableResumesPending: a trigger disabled while its
// delivery is being retried keeps the delivery pending; re-enabled, it
// delivers it. A trigger a 410 disabled can be re-enabled, and its dead
// letter redriven then.
func TestTriggerDisableEnableResumesPending(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookRetries = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond,
		50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, time.Hour}
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders", "gone")
	ctx := t.Context()

	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	rcv := heraldtest.NewReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) })
	tr, err := app.Full.CreateTrigger(ctx, app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(ctx, app.ID, "orders", []byte(`{"n":1}`))
	require.NoError(t, err)
	rcv.Next(t) // the first attempt failed

	off, err := app.Full.UpdateTrigger(ctx, app.ID, "orders", tr.ID, client.TriggerUpdate{State: "disabled"})
	require.NoError(t, err)
	require.Equal(t, "disabled", off.State)
	require.Empty(t, off.Secret, "no rotation, no secret shown")
	require.Equal(t, int64(1), off.Pending, "the delivery waits")

	status.Store(http.StatusNoContent)
	on, err := app.Full.UpdateTrigger(ctx, app.ID, "orders", tr.ID, client.TriggerUpdate{State: "active"})
	require.NoError(t, err)
	require.Equal(t, "active", on.State)
	require.Eventually(t, func() bool {
		got := triggerOf(t, app, "orders")
		return got.Delivered == 1 && got.Pending == 0
	}, 15*time.Second, 10*time.Millisecond, "the pending delivery resumes")

	// 410 disables; re-enabling lets its dead letter be redriven.
	gone := heraldtest.NewReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	gtr, err := app.Full.CreateTrigger(ctx, app.ID, "gone", gone.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(ctx, app.ID, "gone", []byte(`{"n":2}`))
	require.NoError(t, err)
	var dead string
	require.Eventually(t, func() bool {
		dls, err := app.Full.DeadLetters(ctx, app.ID, 10)
		require.NoError(t, err)
		for _, d := range dls {
			if d.TriggerID == gtr.ID {
				dead = d.ID
			}
		}
		return dead != ""
	}, 15*time.Second, 10*time.Millisecond)
	requireAPIError(t, app.Full.Redrive(ctx, app.ID, dead), http.StatusConflict, "trigger_disabled")
	_, err = app.Full.UpdateTrigger(ctx, app.ID, "gone", gtr.ID, client.TriggerUpdate{State: "active"})
	require.NoError(t, err)
	require.NoError(t, app.Full.Redrive(ctx, app.ID, dead))
	gone.Next(t) // the first attempt
	h := gone.Next(t)
	require.Equal(t, dead, h.Header.Get("webhook-id"), "the redriven delivery, same id")
}

// TestTriggerSecretRotationSignsWithBoth: after a rotation, deliveries carry
// a signature for each secret, and the official library verifies the
// delivery with either; once the overlap ends only the new one does.
func TestTriggerSecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	ctx := t.Context()
	rcv := heraldtest.NewReceiver(t, nil)
	tr, err := app.Full.CreateTrigger(ctx, app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	old := tr.Secret

	rot, err := app.Full.UpdateTrigger(ctx, app.ID, "orders", tr.ID, client.TriggerUpdate{RotateSecret: true})
	require.NoError(t, err)
	require.Regexp(t, `^whsec_`, rot.Secret, "the new secret is shown once")
	require.NotEqual(t, old, rot.Secret)
	require.NotNil(t, rot.PreviousSecretExpiresAt)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *rot.PreviousSecretExpiresAt, time.Minute, "24h by default")
	listed := triggerOf(t, app, "orders")
	require.Empty(t, listed.Secret)
	require.NotNil(t, listed.PreviousSecretExpiresAt)

	_, err = app.Full.Publish(ctx, app.ID, "orders", []byte(`{"n":1}`))
	require.NoError(t, err)
	h := rcv.Next(t)
	require.Len(t, strings.Fields(h.Header.Get("webhook-signature")), 2, "two v1 signatures")
	for _, secret := range []string{old, rot.Secret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(h.Body, h.Header), "verifies with each secret")
	}

	// A test delivery during the overlap is signed with both too.
	at, err := app.Full.TestTrigger(ctx, app.ID, "orders", tr.ID)
	require.NoError(t, err)
	require.True(t, at.Delivered)
	require.True(t, at.Test)
	h = rcv.Next(t)
	require.Equal(t, at.DeliveryID, h.Header.Get("webhook-id"))
	var body struct {
		ID      string
		Topic   string
		Message struct {
			Test      bool   `json:"test"`
			TriggerID string `json:"trigger_id"`
		}
	}
	require.NoError(t, json.Unmarshal(h.Body, &body))
	require.Equal(t, "0", body.ID)
	require.Equal(t, "orders", body.Topic)
	require.True(t, body.Message.Test)
	require.Equal(t, tr.ID, body.Message.TriggerID)
	for _, secret := range []string{old, rot.Secret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(h.Body, h.Header))
	}

	// A rotation with no overlap: only the newest secret signs.
	const third = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rot2, err := app.Full.UpdateTrigger(ctx, app.ID, "orders", tr.ID, client.TriggerUpdate{Secret: third, PreviousSecretTTL: "0s"})
	require.NoError(t, err)
	require.Equal(t, third, rot2.Secret)
	require.Nil(t, rot2.PreviousSecretExpiresAt)
	_, err = app.Full.Publish(ctx, app.ID, "orders", []byte(`{"n":2}`))
	require.NoError(t, err)
	h = rcv.Next(t)
	require.Len(t, strings.Fields(h.Header.Get("webhook-signature")), 1)
	wh, err := standardwebhooks.NewWebhook(third)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(h.Body, h.Header))
	wh, err = standardwebhooks.NewWebhook(rot.Secret)
	require.NoError(t, err)
	require.Error(t, wh.Verify(h.Body, h.Header), "the rotated-out secret no longer verifies")
}

// TestTriggerTestAndAttempts: a test delivery answers its outcome at once,
// and the attempts log shows it beside real attempts, newest first, with
// status or error, latency and next retry.
func TestTriggerTestAndAttempts(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookRetries = []time.Duration{time.Hour}
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	other := srv.NewApp(t, "orders")
	ctx := t.Context()
	rcv := heraldtest.NewReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	tr, err := app.Full.CreateTrigger(ctx, app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)

	at, err := app.Full.TestTrigger(ctx, app.ID, "orders", tr.ID)
	require.NoError(t, err)
	require.False(t, at.Delivered)
	require.NotNil(t, at.Status)
	require.Equal(t, http.StatusInternalServerError, *at.Status)
	require.Contains(t, at.Error, "database down")
	require.Positive(t, at.LatencyMS)
	require.Nil(t, at.NextRetry, "a test is never retried")

	_, err = app.Full.Publish(ctx, app.ID, "orders", []byte(`{"n":1}`))
	require.NoError(t, err)
	var as []client.Attempt
	require.Eventually(t, func() bool {
		as, err = app.Full.Attempts(ctx, app.ID, "orders", tr.ID, 0)
		require.NoError(t, err)
		return len(as) == 2
	}, 15*time.Second, 10*time.Millisecond)
	real, test := as[0], as[1]
	require.True(t, test.Test)
	require.Equal(t, at.DeliveryID, test.DeliveryID)
	require.False(t, real.Test)
	require.True(t, strings.HasPrefix(real.DeliveryID, "msg_"))
	require.Equal(t, http.StatusInternalServerError, *real.Status)
	require.NotNil(t, real.NextRetry, "retried in an hour")
	require.WithinDuration(t, time.Now().Add(time.Hour), *real.NextRetry, 20*time.Minute)
	one, err := app.Full.Attempts(ctx, app.ID, "orders", tr.ID, 1)
	require.NoError(t, err)
	require.Len(t, one, 1)

	// A receiver that is not there: no status, an error.
	dead := heraldtest.NewReceiver(t, nil)
	deadURL := dead.URL
	dead.Close()
	tr2, err := app.Full.CreateTrigger(ctx, app.ID, "orders", deadURL, "")
	require.NoError(t, err)
	at, err = app.Full.TestTrigger(ctx, app.ID, "orders", tr2.ID)
	require.NoError(t, err)
	require.Nil(t, at.Status)
	require.NotEmpty(t, at.Error)

	// Bad input and other tenants.
	base := srv.URL + "/v1/apps/" + app.ID + "/topics/orders/triggers/" + tr.ID
	for _, tc := range []struct{ body, code string }{
		{`{}`, "invalid_request"},
		{`{"state":"paused"}`, "invalid_request"},
		{`{"state":`, "invalid_request"},
		{`{"secret":"whsec_short"}`, "invalid_secret"},
		{`{"rotate_secret":true,"previous_secret_ttl":"9999h"}`, "invalid_request"},
		{`{"rotate_secret":true,"previous_secret_ttl":"-1s"}`, "invalid_request"},
		{`{"previous_secret_ttl":"1h"}`, "invalid_request"},
		{`{"state":"active","extra":true}`, "invalid_request"},
	} {
		requireErrorBody(t, send(t, http.MethodPatch, base, app.FullKey, tc.body), http.StatusBadRequest, tc.code)
	}
	requireErrorBody(t, send(t, http.MethodGet, base+"/attempts?limit=0", app.FullKey, ""), http.StatusBadRequest, "invalid_request")
	requireErrorBody(t, send(t, http.MethodGet, base+"/attempts?limit=101", app.FullKey, ""), http.StatusBadRequest, "invalid_request")
	requireErrorBody(t, send(t, http.MethodPatch, base, app.SubscribeKey, `{"state":"active"}`), http.StatusForbidden, "forbidden")
	requireErrorBody(t, send(t, http.MethodPost, base+"/test", other.FullKey, ""), http.StatusForbidden, "forbidden")
	otherBase := srv.URL + "/v1/apps/" + other.ID + "/topics/orders/triggers/" + tr.ID
	requireErrorBody(t, send(t, http.MethodPost, otherBase+"/test", other.FullKey, ""), http.StatusNotFound, "trigger_not_found")
	requireErrorBody(t, send(t, http.MethodGet, otherBase+"/attempts", other.FullKey, ""), http.StatusNotFound, "trigger_not_found")
	requireErrorBody(t, send(t, http.MethodPatch, otherBase, other.FullKey, `{"state":"disabled"}`), http.StatusNotFound, "trigger_not_found")
	ts, err := app.Full.ListTriggers(ctx, app.ID, "orders")
	require.NoError(t, err)
	for _, got := range ts {
		require.Equal(t, "active", got.State, "nothing changed")
	}
}
