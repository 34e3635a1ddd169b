package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// triggerAdminOf returns b's store as a store.TriggerAdmin, which every
// store implements.
func triggerAdminOf(t *testing.T, b *testBundle) store.TriggerAdmin {
	t.Helper()
	ta, ok := b.st.(store.TriggerAdmin)
	require.True(t, ok, "%T does not implement store.TriggerAdmin; every store must", b.st)
	return ta
}

func testTriggerAdmin(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("DisableHoldsDeliveriesAndEnableResumesThem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ta := triggerAdminOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		tr := createTrigger(t, b, app.ID, "orders")
		publish(t, b, app.ID, "orders", `{"n":1}`)

		off, on := true, false
		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "orders", tr.ID, store.TriggerUpdate{Disabled: &off}))
		require.True(t, listTriggers(t, b, app.ID, "orders")[0].Disabled)
		require.Empty(t, claimAll(t, b, later()), "a disabled trigger's deliveries wait")
		publish(t, b, app.ID, "orders", `{"n":2}`)
		requireCounts(t, listTriggers(t, b, app.ID, "orders")[0], 1, 0, 0)

		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "orders", tr.ID, store.TriggerUpdate{Disabled: &on}))
		got := listTriggers(t, b, app.ID, "orders")[0]
		require.False(t, got.Disabled)
		require.Equal(t, tr.Secret, got.Secret, "an update without a secret keeps it")
		ds := claimAll(t, b, later())
		require.Len(t, ds, 1, "the pending delivery resumes")
	})

	t.Run("SecretRotationKeepsThePreviousForItsOverlap", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ta := triggerAdminOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		tr := createTrigger(t, b, app.ID, "orders")
		until := now().Add(time.Hour)
		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "orders", tr.ID, store.TriggerUpdate{Secret: "whsec_new", PreviousUntil: until}))
		got := listTriggers(t, b, app.ID, "orders")[0]
		require.Equal(t, "whsec_new", got.Secret)
		require.Equal(t, tr.Secret, got.PreviousSecret)
		requireSameTime(t, until, got.PreviousSecretUntil)

		publish(t, b, app.ID, "orders", `{"n":1}`)
		ds := claimAll(t, b, now())
		require.Len(t, ds, 1)
		require.Equal(t, "whsec_new", ds[0].Secret)
		require.Equal(t, tr.Secret, ds[0].PreviousSecret, "within the overlap both secrets sign")
		settle(t, b, ds[0], store.DeliveryDelivered, now())

		publish(t, b, app.ID, "orders", `{"n":2}`)
		ds = claimAll(t, b, until.Add(time.Second))
		require.Len(t, ds, 1)
		require.Empty(t, ds[0].PreviousSecret, "after the overlap only the new one does")

		// Rotating again drops the first secret for good.
		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "orders", tr.ID, store.TriggerUpdate{Secret: "whsec_third"}))
		got = listTriggers(t, b, app.ID, "orders")[0]
		require.Equal(t, "whsec_third", got.Secret)
		require.Equal(t, "whsec_new", got.PreviousSecret)
		require.True(t, got.PreviousSecretUntil.IsZero(), "no overlap")
	})

	t.Run("SettleAndTestsFillTheAttemptsLog", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ta := triggerAdminOf(t, b)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		tr := createTrigger(t, b, app.ID, "orders")

		attempts, err := ta.Attempts(b.ctx, app.ID, "orders", tr.ID, 100)
		require.NoError(t, err)
		require.Empty(t, attempts)

		publish(t, b, app.ID, "orders", `{"n":1}`)
		ds := claimAll(t, b, later())
		require.Len(t, ds, 1)
		first := now()
		retry := first.Add(time.Minute)
		require.NoError(t, ob.Settle(b.ctx, store.Outcome{DeliveryID: ds[0].ID, LeaseUntil: ds[0].LeaseUntil,
			State: store.DeliveryPending, NextAt: retry, Status: 503, Error: "HTTP 503 Service Unavailable", At: first,
			Duration: 1500 * time.Microsecond}))
		ds = claimAll(t, b, retry)
		require.Len(t, ds, 1)
		second := retry.Add(time.Second)
		require.NoError(t, ob.Settle(b.ctx, store.Outcome{DeliveryID: ds[0].ID, LeaseUntil: ds[0].LeaseUntil,
			State: store.DeliveryDelivered, Status: 204, At: second, Duration: 2 * time.Millisecond}))
		require.NoError(t, ta.RecordAttempt(b.ctx, store.Attempt{TriggerID: tr.ID, DeliveryID: "msg_test", At: second.Add(time.Second),
			Status: 0, Error: "connection refused \x00\xff", Duration: time.Millisecond, Test: true}))

		attempts, err = ta.Attempts(b.ctx, app.ID, "orders", tr.ID, 100)
		require.NoError(t, err)
		require.Len(t, attempts, 3)
		test, ok, failed := attempts[0], attempts[1], attempts[2]
		require.True(t, test.Test)
		require.Equal(t, "msg_test", test.DeliveryID)
		require.Contains(t, test.Error, "connection refused")

		require.False(t, ok.Test)
		require.Equal(t, ds[0].ID, ok.DeliveryID)
		require.Equal(t, 204, ok.Status)
		require.Empty(t, ok.Error)
		require.Equal(t, 2*time.Millisecond, ok.Duration)
		requireSameTime(t, second, ok.At)
		require.True(t, ok.NextAt.IsZero())

		require.Equal(t, 503, failed.Status)
		require.Equal(t, "HTTP 503 Service Unavailable", failed.Error)
		requireSameTime(t, retry, failed.NextAt)
		require.Equal(t, 1500*time.Microsecond, failed.Duration)

		attempts, err = ta.Attempts(b.ctx, app.ID, "orders", tr.ID, 1)
		require.NoError(t, err)
		require.Len(t, attempts, 1, "limit")
		require.True(t, attempts[0].Test, "newest first")

		// Attempts go with the longer retention.
		_, err = ob.PruneDeliveries(b.ctx, second.Add(-time.Hour), second.Add(-time.Hour))
		require.NoError(t, err)
		attempts, err = ta.Attempts(b.ctx, app.ID, "orders", tr.ID, 100)
		require.NoError(t, err)
		require.Len(t, attempts, 3, "nothing is old enough")
		_, err = ob.PruneDeliveries(b.ctx, later().Add(time.Hour), second.Add(time.Millisecond))
		require.NoError(t, err)
		attempts, err = ta.Attempts(b.ctx, app.ID, "orders", tr.ID, 100)
		require.NoError(t, err)
		require.Len(t, attempts, 1, "only the test, after both cutoffs")
	})

	t.Run("UnknownOrAnotherTopicsTriggerIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ta := triggerAdminOf(t, b)
		app := createApp(t, b)
		other := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		createTopic(t, b, app.ID, "stock")
		tr := createTrigger(t, b, app.ID, "orders")
		off := true
		for _, c := range []struct{ app, topic, id string }{
			{app.ID, "stock", tr.ID}, {other.ID, "orders", tr.ID}, {app.ID, "orders", "nope"}, {app.ID, "orders", "bad\x00\xff"},
		} {
			requireNotFound(t, ta.UpdateTrigger(b.ctx, c.app, c.topic, c.id, store.TriggerUpdate{Disabled: &off}))
			_, err := ta.Attempts(b.ctx, c.app, c.topic, c.id, 10)
			requireNotFound(t, err)
		}
		requireNotFound(t, ta.RecordAttempt(b.ctx, store.Attempt{TriggerID: "nope", DeliveryID: "msg_x", At: now()}))
		require.False(t, listTriggers(t, b, app.ID, "orders")[0].Disabled, "nothing changed")
	})
}
