package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestWebhookCarriesTheSSEData follows a topic over SSE and through a
// trigger: the webhook body is the frame's data, byte for byte, and the
// official Standard Webhooks library verifies its signature.
func TestWebhookCarriesTheSSEData(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	tr, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL+"/hook", "")
	require.NoError(t, err)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{32}$`, tr.Secret)
	require.Equal(t, "active", tr.State)

	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "orders", 1)
	_, err = app.Full.Publish(t.Context(), app.ID, "orders", []byte("{ \"order\": 42,\n \"note\": \"caf\u00e9 \\u2028\" }"))
	require.NoError(t, err)
	frame := nextData(t, r)
	for frame.Data == "" {
		frame = nextData(t, r)
	}

	h := rcv.Next(t)
	require.Equal(t, frame.Data, string(h.Body), "the webhook body is the SSE frame's data")
	wh, err := standardwebhooks.NewWebhook(tr.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(h.Body, h.Header))

	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
		require.NoError(t, err)
		require.Len(t, ts, 1)
		require.Empty(t, ts[0].Secret, "the secret is shown at creation only")
		return ts[0].Delivered == 1 && ts[0].Pending == 0
	}, 10*time.Second, 10*time.Millisecond)
	m := scrape(t, srv.URL)
	require.Contains(t, m, "herald_webhook_delivered_total 1")
	require.Contains(t, m, "herald_webhook_attempt_duration_seconds_count 1")
}

// TestSlowWebhookDelaysNeitherPublishNorSSE points ten triggers at a
// receiver that holds every request until the test ends, with two dispatch
// slots: every publish is answered and a stream gets every message while
// the receiver still holds its first requests. Nothing here is timed, so a
// busy machine cannot fail it: had a publish or the stream waited for the
// receiver, it would wait for ever.
func TestSlowWebhookDelaysNeitherPublishNorSSE(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookConcurrency = 2
	cfg.WebhookTimeout = time.Hour // attempts end only when released
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	release := make(chan struct{})
	defer close(release) // before the server stops: it waits for its attempts
	var answered atomic.Int32
	rcv := heraldtest.NewReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		defer answered.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	for range 10 {
		_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
		require.NoError(t, err)
	}
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "orders", 1)

	const n = 50
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(strconv.Itoa(i)))
		require.NoError(t, err)
		slowest = max(slowest, time.Since(start))
		if i == 0 {
			rcv.Next(t) // the receiver holds a request from here on
		}
	}
	got := 0
	for got < n {
		if f := nextData(t, r); f.Data != "" {
			got++
		}
	}
	require.Zero(t, answered.Load(), "every publish was answered and every message streamed while the receiver held its requests")
	t.Logf("slowest of %d publishes: %s", n, slowest)
	ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
	require.NoError(t, err)
	var pending int64
	for _, tr := range ts {
		pending += tr.Pending
	}
	require.Equal(t, int64(10*n), pending, "every delivery is queued, none lost, none done")
}

// TestIdempotentPublish retries a publish with its Idempotency-Key: the
// retry gets the first answer, and there is one message, one event and one
// webhook.
func TestIdempotentPublish(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders", "stock")
	rcv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "orders", 1)

	first, replayed, err := app.Full.PublishIdempotent(t.Context(), app.ID, "orders", "order-42-created", []byte(`{"order":42}`))
	require.NoError(t, err)
	require.False(t, replayed)
	again, replayed, err := app.Full.PublishIdempotent(t.Context(), app.ID, "orders", "order-42-created", []byte(`{"order":42}`))
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, first, again, "the retry gets the first answer")
	_, _, err = app.Full.PublishIdempotent(t.Context(), app.ID, "stock", "order-42-created", []byte(`1`))
	requireAPIError(t, err, http.StatusConflict, "idempotency_key_reused")
	_, _, err = app.Full.PublishIdempotent(t.Context(), app.ID, "orders", strings.Repeat("k", 256), []byte(`1`))
	requireAPIError(t, err, http.StatusBadRequest, "invalid_request")
	other, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`{"order":43}`))
	require.NoError(t, err)

	msgs, err := app.Full.History(t.Context(), app.ID, "orders", "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "one message per key")
	var ids []string
	for len(ids) < 2 {
		if f := nextData(t, r); f.Data != "" {
			ids = append(ids, f.ID)
		}
	}
	require.Equal(t, []string{first.ID, other.ID}, ids, "the retry was not streamed again")
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
		require.NoError(t, err)
		return ts[0].Delivered == 2
	}, 10*time.Second, 10*time.Millisecond)
	ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
	require.NoError(t, err)
	require.Equal(t, [3]int64{0, 2, 0}, [3]int64{ts[0].Pending, ts[0].Delivered, ts[0].Dead}, "two webhooks, not three")
}

// TestWebhookQueuedBeforeAStopIsDeliveredAfterRestart publishes on a node
// that delivers no webhooks, stops it, and starts one on the same data
// directory that does: what was acknowledged is delivered.
func TestWebhookQueuedBeforeAStopIsDeliveredAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookConcurrency = -1
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	for i := range 5 {
		_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(strconv.Itoa(i)))
		require.NoError(t, err)
	}
	require.NoError(t, srv.Stop())
	require.Empty(t, rcv.Hits, "the first node delivers nothing")

	cfg.WebhookConcurrency = 16
	heraldtest.Start(t, cfg)
	seen := map[string]bool{}
	for range 5 {
		seen[rcv.Next(t).Header.Get("webhook-id")] = true
	}
	require.Len(t, seen, 5)
}

func TestDeliveredWebhooksArePruned(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.PruneInterval = 20 * time.Millisecond
	cfg.WebhookRetention = time.Millisecond
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(t.Context(), app.ID, "orders", []byte(`1`))
	require.NoError(t, err)
	rcv.Next(t)
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, srv.URL), "herald_webhook_deliveries_pruned_total 1")
	}, 10*time.Second, 10*time.Millisecond)
	ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
	require.NoError(t, err)
	require.Equal(t, [3]int64{0, 0, 0}, [3]int64{ts[0].Pending, ts[0].Delivered, ts[0].Dead})
}

func TestTriggerAPIErrors(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	a := srv.NewApp(t, "orders")
	b := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	tr, err := a.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, "")
	require.NoError(t, err)

	// Another app's key.
	_, err = b.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, "")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	_, err = b.Full.ListTriggers(t.Context(), a.ID, "orders")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	requireAPIError(t, b.Full.DeleteTrigger(t.Context(), a.ID, "orders", tr.ID), http.StatusForbidden, "forbidden")
	_, err = b.Full.DeadLetters(t.Context(), a.ID, 0)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	requireAPIError(t, b.Full.Redrive(t.Context(), a.ID, "msg_x"), http.StatusForbidden, "forbidden")
	// Another app's trigger, through its own app.
	requireAPIError(t, b.Full.DeleteTrigger(t.Context(), b.ID, "orders", tr.ID), http.StatusNotFound, "trigger_not_found")

	// A refused address names itself and the way to allow it.
	_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", "http://192.168.0.10:8080/hook", "")
	requireAPIError(t, err, http.StatusBadRequest, "address_refused")
	require.ErrorContains(t, err, "192.168.0.10, a private address")
	require.ErrorContains(t, err, "--webhook-allow-nets")
	_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", "http://[::1]:8080/hook", "")
	requireAPIError(t, err, http.StatusBadRequest, "address_refused")
	_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", "javascript:alert(1)", "")
	requireAPIError(t, err, http.StatusBadRequest, "invalid_url")
	_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, "whsec_c2hvcnQ=")
	requireAPIError(t, err, http.StatusBadRequest, "invalid_secret")

	// A given secret is kept.
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tr2, err := a.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, secret)
	require.NoError(t, err)
	require.Equal(t, secret, tr2.Secret)

	// At most 20 triggers a topic.
	for range 18 {
		_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, "")
		require.NoError(t, err)
	}
	_, err = a.Full.CreateTrigger(t.Context(), a.ID, "orders", rcv.URL, "")
	requireAPIError(t, err, http.StatusConflict, "too_many_triggers")

	require.NoError(t, a.Full.DeleteTrigger(t.Context(), a.ID, "orders", tr.ID))
	requireAPIError(t, a.Full.DeleteTrigger(t.Context(), a.ID, "orders", tr.ID), http.StatusNotFound, "trigger_not_found")
	ts, err := a.Full.ListTriggers(t.Context(), a.ID, "orders")
	require.NoError(t, err)
	require.Len(t, ts, 19)
	_, err = a.Full.ListTriggers(t.Context(), a.ID, "ghost")
	requireAPIError(t, err, http.StatusNotFound, "topic_not_found")
}

// TestDeadLetterRedriveOverHTTP lets a delivery die, then redrives it
// twice through the API: one more delivery, with the same webhook-id.
func TestDeadLetterRedriveOverHTTP(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookRetries = []time.Duration{10 * time.Millisecond}
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	var healthy atomic.Bool
	rcv := heraldtest.NewReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}
	})
	tr, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	m, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`{"order":42}`))
	require.NoError(t, err)

	var dl client.DeadLetter
	require.Eventually(t, func() bool {
		dls, err := app.Full.DeadLetters(t.Context(), app.ID, 0)
		require.NoError(t, err)
		if len(dls) == 1 {
			dl = dls[0]
		}
		return len(dls) == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, tr.ID, dl.TriggerID)
	require.Equal(t, m.ID, dl.MessageID)
	require.JSONEq(t, `{"order":42}`, string(dl.Message))
	require.Equal(t, 2, dl.Attempts)
	require.NotNil(t, dl.LastStatus)
	require.Equal(t, 503, *dl.LastStatus)
	require.Equal(t, "HTTP 503 Service Unavailable: maintenance", dl.LastError)
	require.False(t, dl.FailedAt.Before(dl.CreatedAt))

	healthy.Store(true)
	require.NoError(t, app.Full.Redrive(t.Context(), app.ID, dl.ID))
	// Again at once: still queued (nothing changes), or delivered already
	// if the dispatcher was quicker (and then it says so).
	if err := app.Full.Redrive(t.Context(), app.ID, dl.ID); err != nil {
		requireAPIError(t, err, http.StatusConflict, "already_delivered")
	}
	requireAPIError(t, app.Full.Redrive(t.Context(), app.ID, "msg_ghost"), http.StatusNotFound, "dead_letter_not_found")
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
		require.NoError(t, err)
		return ts[0].Delivered == 1
	}, 10*time.Second, 10*time.Millisecond)
	ts, err := app.Full.ListTriggers(t.Context(), app.ID, "orders")
	require.NoError(t, err)
	require.Equal(t, [3]int64{0, 1, 0}, [3]int64{ts[0].Pending, ts[0].Delivered, ts[0].Dead})
	requireAPIError(t, app.Full.Redrive(t.Context(), app.ID, dl.ID), http.StatusConflict, "already_delivered")
	hits := []heraldtest.Hit{rcv.Next(t), rcv.Next(t), rcv.Next(t)}
	require.Empty(t, rcv.Hits, "two failed attempts and one delivery")
	for _, h := range hits {
		require.Equal(t, dl.ID, h.Header.Get("webhook-id"))
	}
}

// TestLoopbackRefusedWithoutTheAllowance creates a trigger to a receiver on
// loopback while loopback is allowed, then restarts without the allowance:
// creating another is refused, and the queued delivery is refused at
// connection time, retried, and never reaches the receiver.
func TestLoopbackRefusedWithoutTheAllowance(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookConcurrency = -1
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(t.Context(), app.ID, "orders", []byte(`1`))
	require.NoError(t, err)
	require.NoError(t, srv.Stop())

	cfg.WebhookConcurrency, cfg.WebhookAllowNets = 16, nil
	srv = heraldtest.Start(t, cfg)
	full := client.New(srv.URL, app.FullKey)
	_, err = full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	requireAPIError(t, err, http.StatusBadRequest, "address_refused")
	require.ErrorContains(t, err, "127.0.0.1, a loopback address")
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, srv.URL), "herald_webhook_failed_attempts_total 1")
	}, 10*time.Second, 10*time.Millisecond)
	ts, err := full.ListTriggers(t.Context(), app.ID, "orders")
	require.NoError(t, err)
	require.Equal(t, int64(1), ts[0].Pending, "refused, to be retried")
	require.Empty(t, rcv.Hits, "never reached")
}
