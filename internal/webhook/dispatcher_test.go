package webhook_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/event"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

func TestDispatcherDeliversTheSSEDataSigned(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		rcv := newReceiver(t, nil)
		tr := b.trigger(t, rcv.URL+"/hook")
		m := b.publish(t, `{"order":42,"total":12.5}`)
		b.dispatcher(t, webhook.DispatcherOptions{})

		h := rcv.next(t)
		wh, err := standardwebhooks.NewWebhook(tr.Secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(h.Body, h.Header), "the official Standard Webhooks library verifies it")
		ev := &event.Event{Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt}
		require.Equal(t, string(event.AppendData(nil, ev)), string(h.Body), "the body is the SSE frame's data")
		require.Regexp(t, `^msg_`, h.Header.Get("webhook-id"))

		o := b.nextOutcome(t)
		require.NoError(t, o.Err)
		require.Equal(t, store.DeliveryDelivered, o.State)
		require.Equal(t, http.StatusNoContent, o.Status)
		st := b.stats(t)
		require.Equal(t, [3]int64{0, 1, 0}, [3]int64{st.Pending, st.Delivered, st.Dead})
	})
}

// TestDispatcherRetriesOnScheduleThenDeadLetters runs a compressed schedule
// (50, 100, 200 ms) against a receiver that always fails: exactly four
// attempts, with the same webhook-id and growing scheduled delays, none
// before its time, then a dead letter.
func TestDispatcherRetriesOnScheduleThenDeadLetters(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("database on fire"))
		})
		b.trigger(t, rcv.URL)
		retries := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
		b.publish(t, `{"n":1}`)
		m := metrics.New()
		// The poll is an hour: the first attempt comes from the claim at
		// start, each retry from the dispatcher keeping in mind the retries
		// it scheduled.
		b.dispatcher(t, webhook.DispatcherOptions{Retries: retries, Metrics: m, PollInterval: time.Hour})

		var outcomes []settled
		for {
			o := b.nextOutcome(t)
			require.NoError(t, o.Err)
			outcomes = append(outcomes, o)
			if o.State != store.DeliveryPending {
				break
			}
		}
		require.Len(t, outcomes, 4, "one attempt and three retries")
		require.Equal(t, store.DeliveryDead, outcomes[3].State)
		// The schedule is asserted on what the dispatcher decided (each
		// outcome's NextAt), not on the gaps the receiver observed: a
		// scheduler stall on a busy machine lengthens any observed gap, so
		// "observed gaps grow" can be inverted by load alone.
		for i, o := range outcomes[:3] {
			delay := o.NextAt.Sub(o.At)
			require.InDelta(t, float64(retries[i]), float64(delay), 0.151*float64(retries[i]), "retry %d: delay with jitter", i+1)
			if i > 0 {
				require.Greater(t, delay, outcomes[i-1].NextAt.Sub(outcomes[i-1].At), "scheduled delays grow")
			}
		}

		hits := []hit{rcv.next(t), rcv.next(t), rcv.next(t), rcv.next(t)}
		require.Empty(t, rcv.hits, "exactly four attempts")
		for i := 1; i < len(hits); i++ {
			require.Equal(t, hits[0].Header.Get("webhook-id"), hits[i].Header.Get("webhook-id"), "one id across retries")
			// Load can only delay an attempt, never bring it forward: each
			// retry reaches the receiver no earlier than it was scheduled,
			// which is at least the (jittered) delay after the attempt
			// before it was answered.
			require.False(t, hits[i].At.Before(outcomes[i-1].NextAt), "attempt %d before its scheduled time %v", i+1, outcomes[i-1].NextAt)
			require.GreaterOrEqual(t, hits[i].At.Sub(hits[i-1].At), time.Duration(0.85*float64(retries[i-1])), "gap %d", i)
		}

		dls, err := b.st.DeadLetters(t.Context(), b.app, 10)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		require.Equal(t, hits[0].Header.Get("webhook-id"), dls[0].ID)
		require.Equal(t, 4, dls[0].Attempts)
		require.Equal(t, 500, dls[0].LastStatus)
		require.Equal(t, "HTTP 500 Internal Server Error: database on fire", dls[0].LastError)
		st := b.stats(t)
		require.Equal(t, [3]int64{0, 0, 1}, [3]int64{st.Pending, st.Delivered, st.Dead})
		require.False(t, st.Disabled, "a dead letter does not disable its trigger")
		require.Equal(t, 4.0, counter(t, m.WebhookAttempts))
		require.Equal(t, 4.0, counter(t, m.WebhookFailed))
		require.Equal(t, 1.0, counter(t, m.WebhookDead))
		require.Equal(t, 0.0, counter(t, m.WebhookDelivered))
	})
}

func TestDispatcherHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		var n atomic.Int32
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			switch n.Add(1) {
			case 1:
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			case 2:
				w.Header().Set("Retry-After", "7200") // two hours: capped at one
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		b.trigger(t, rcv.URL)
		b.dispatcher(t, webhook.DispatcherOptions{Retries: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, Jitter: -1})
		b.publish(t, `1`)

		first := b.nextOutcome(t)
		require.Equal(t, http.StatusTooManyRequests, first.Status)
		require.Equal(t, time.Second, first.NextAt.Sub(first.At), "Retry-After beats the 10ms of the schedule")
		second := b.nextOutcome(t)
		require.Equal(t, http.StatusServiceUnavailable, second.Status)
		require.Equal(t, store.DeliveryPending, second.State)
		require.Equal(t, webhook.MaxRetryAfter, second.NextAt.Sub(second.At), "capped")

		a, c := rcv.next(t), rcv.next(t)
		require.GreaterOrEqual(t, c.At.Sub(a.At), 950*time.Millisecond, "the receiver was left alone as long as it asked")
	})
}

func TestDispatcherDisablesTriggerOnGone(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
		b.trigger(t, rcv.URL)
		b.dispatcher(t, webhook.DispatcherOptions{})
		b.publish(t, `1`)

		o := b.nextOutcome(t)
		require.NoError(t, o.Err)
		require.Equal(t, store.DeliveryDead, o.State, "410 is not retried")
		require.True(t, o.DisableTrigger)
		st := b.stats(t)
		require.True(t, st.Disabled)
		require.Equal(t, int64(1), st.Dead)

		b.publish(t, `2`)
		st = b.stats(t)
		require.Zero(t, st.Pending, "a disabled trigger gets no deliveries")
		rcv.next(t)
		require.Empty(t, rcv.hits)
	})
}

// TestDispatcherRetriesEveryOtherFailure checks that each kind of failure
// is retried: other 4xx (as Standard Webhooks and Svix do), 429, 5xx,
// redirects, timeouts and connection failures.
func TestDispatcherRetriesEveryOtherFailure(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		g := newGate()
		defer g.open()
		byStatus := func(status int) *receiver {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) })
		}
		slow := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) { g.wait(r) })
		closed := newReceiver(t, nil)
		closed.Close()
		redirect := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/there", http.StatusFound) })
		want := map[string]string{
			byStatus(400).URL: "HTTP 400 Bad Request",
			byStatus(401).URL: "HTTP 401 Unauthorized",
			byStatus(404).URL: "HTTP 404 Not Found",
			byStatus(429).URL: "HTTP 429 Too Many Requests",
			byStatus(502).URL: "HTTP 502 Bad Gateway",
			redirect.URL:      "HTTP 302 Found to /there (redirects are not followed)",
			slow.URL:          "timed out after 300ms",
			closed.URL:        "connect: connection refused",
		}
		for url := range want {
			b.trigger(t, url)
		}
		b.dispatcher(t, webhook.DispatcherOptions{Timeout: 300 * time.Millisecond, Retries: []time.Duration{time.Hour}})
		b.publish(t, `1`)
		for range want {
			o := b.nextOutcome(t)
			require.NoError(t, o.Err)
			require.Equal(t, store.DeliveryPending, o.State, o.Error)
			require.InDelta(t, float64(time.Hour), float64(o.NextAt.Sub(o.At)), 0.151*float64(time.Hour))
			ds, err := b.st.DeadLetters(t.Context(), b.app, 1)
			require.NoError(t, err)
			require.Empty(t, ds)
			found := false
			for _, w := range want {
				if o.Error == w || (len(o.Error) > len(w) && o.Error[len(o.Error)-len(w):] == w) {
					found = true
				}
			}
			require.True(t, found, "unexpected error %q", o.Error)
		}
	})
}

func TestRedriveTwiceDeliversOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		var healthy atomic.Bool
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			if !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		b.trigger(t, rcv.URL)
		d := b.dispatcher(t, webhook.DispatcherOptions{Retries: []time.Duration{10 * time.Millisecond}})
		b.publish(t, `{"n":1}`)
		require.Equal(t, store.DeliveryPending, b.nextOutcome(t).State)
		require.Equal(t, store.DeliveryDead, b.nextOutcome(t).State)
		dls, err := b.st.DeadLetters(t.Context(), b.app, 10)
		require.NoError(t, err)
		require.Len(t, dls, 1)

		healthy.Store(true)
		trs, err := webhook.NewTriggers(webhook.TriggersOptions{Store: b.st, WakeFunc: d.Wake, NewIDFunc: func() string { return "unused" }})
		require.NoError(t, err)
		require.NoError(t, trs.Redrive(t.Context(), b.app, dls[0].ID))
		// Again at once: still queued, or delivered already if the
		// dispatcher was quicker.
		if err := trs.Redrive(t.Context(), b.app, dls[0].ID); err != nil {
			require.ErrorIs(t, err, store.ErrDelivered)
		}
		o := b.nextOutcome(t)
		require.Equal(t, store.DeliveryDelivered, o.State)
		require.ErrorIs(t, trs.Redrive(t.Context(), b.app, dls[0].ID), store.ErrDelivered, "redriving a delivered one says so and sends nothing")

		st := b.stats(t)
		require.Equal(t, [3]int64{0, 1, 0}, [3]int64{st.Pending, st.Delivered, st.Dead}, "nothing left to attempt")
		hits := []hit{rcv.next(t), rcv.next(t), rcv.next(t)}
		require.Empty(t, rcv.hits, "two failures and one delivery")
		for _, h := range hits {
			require.Equal(t, dls[0].ID, h.Header.Get("webhook-id"), "the same id through the redrive")
		}
		require.ErrorIs(t, trs.Redrive(t.Context(), b.app, "msg_nope"), store.ErrNotFound)
	})
}

// TestDispatcherKilledMidRequestLeavesItToTheLease kills a dispatcher while
// the receiver holds its request: the delivery is not settled, and another
// dispatcher claims it only once the lease has run out.
func TestDispatcherKilledMidRequestLeavesItToTheLease(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		g := newGate()
		defer g.open()
		var n atomic.Int32
		rcv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				g.wait(r) // the first attempt hangs until its dispatcher dies
			}
		})
		b.trigger(t, rcv.URL)
		b.publish(t, `1`)
		const timeout, lease = time.Second, 1500 * time.Millisecond
		opts := webhook.DispatcherOptions{Timeout: timeout, Lease: lease}
		first, err := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: b.st, Guard: webhook.NewGuard(loopback()), Timeout: timeout, Lease: lease,
			PollInterval: 10 * time.Millisecond, SettledFunc: func(o store.Outcome, err error) { b.outcomes <- settled{o, err} }})
		require.NoError(t, err)
		claimedBefore := time.Now()
		first.Start(t.Context())
		h1 := rcv.next(t)

		killed, kill := context.WithCancel(t.Context())
		kill()
		require.NoError(t, first.Close(killed), "a dispatcher killed mid-request")
		require.Empty(t, b.outcomes, "the abandoned attempt is not settled")

		b.dispatcher(t, opts)
		h2 := rcv.next(t)
		require.Equal(t, h1.Header.Get("webhook-id"), h2.Header.Get("webhook-id"))
		require.False(t, h2.At.Before(claimedBefore.Add(lease)), "claimed again only after the lease ran out")
		o := b.nextOutcome(t)
		require.Equal(t, store.DeliveryDelivered, o.State)
		require.Equal(t, int64(1), b.stats(t).Delivered)
	})
}

// TestDispatcherCloseWaitsForAttemptsInFlight closes a dispatcher while the
// receiver holds its request: Close waits, and returns once the attempt has
// ended and been settled.
func TestDispatcherCloseWaitsForAttemptsInFlight(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		g := newGate()
		defer g.open()
		rcv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) { g.wait(r) })
		b.trigger(t, rcv.URL)
		b.publish(t, `1`)
		d := b.dispatcher(t, webhook.DispatcherOptions{})
		rcv.next(t)

		ctx := &doneSpy{Context: t.Context(), asked: make(chan struct{})}
		closed := make(chan error, 1)
		go func() { closed <- d.Close(ctx) }()
		<-ctx.asked // Close is waiting for the attempt, bounded by ctx
		require.Empty(t, closed, "Close returned with an attempt in flight")
		require.Empty(t, b.outcomes, "settled before the receiver answered")
		g.open()
		require.NoError(t, <-closed)
		select {
		case o := <-b.outcomes:
			require.Equal(t, store.DeliveryDelivered, o.State, "settled before Close returned")
		default:
			t.Fatal("Close returned before the attempt was settled")
		}
		require.Equal(t, int64(1), b.stats(t).Delivered)
	})
}

// doneSpy is a context that tells when someone first waits on it.
type doneSpy struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (c *doneSpy) Done() <-chan struct{} {
	c.once.Do(func() { close(c.asked) })
	return c.Context.Done()
}

// TestDispatcherChecksTheAddressAtDelivery creates a trigger to loopback
// while loopback is allowed, then delivers with a dispatcher that does not
// allow it: the connection is refused, and retried, never made.
func TestDispatcherChecksTheAddressAtDelivery(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		rcv := newReceiver(t, nil)
		b.trigger(t, rcv.URL)
		b.publish(t, `1`)
		b.dispatcher(t, webhook.DispatcherOptions{Guard: webhook.NewGuard(nil)})
		o := b.nextOutcome(t)
		require.Equal(t, store.DeliveryPending, o.State)
		require.Zero(t, o.Status)
		require.Contains(t, o.Error, "refused: 127.0.0.1, a loopback address")
		require.Empty(t, rcv.hits)
	})
}

func TestDispatcherWakesBeforeItsPoll(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(t *testing.T) outboxStore) {
		b := setup(t, open)
		rcv := newReceiver(t, nil)
		b.trigger(t, rcv.URL)
		d := b.dispatcher(t, webhook.DispatcherOptions{PollInterval: time.Hour})
		for i := range 3 {
			b.publish(t, strconv.Itoa(i))
			d.Wake()
			require.Equal(t, store.DeliveryDelivered, b.nextOutcome(t).State, "message %d", i)
		}
	})
}

func TestNewDispatcherRefusesALeaseWithinTheTimeout(t *testing.T) {
	t.Parallel()
	_, err := webhook.NewDispatcher(webhook.DispatcherOptions{Queue: openSQLite(t), Timeout: time.Minute, Lease: time.Minute})
	require.ErrorContains(t, err, "must be longer than the attempt timeout")
	_, err = webhook.NewDispatcher(webhook.DispatcherOptions{})
	require.Error(t, err)
}
