package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// outboxOf returns b's store as a store.Outbox. Every store must be one:
// the suite tests the durable path of every implementation.
func outboxOf(t *testing.T, b *testBundle) store.Outbox {
	t.Helper()
	ob, ok := b.st.(store.Outbox)
	require.True(t, ok, "%T does not implement store.Outbox; every store must", b.st)
	return ob
}

// createTrigger creates an enabled trigger on a topic that must exist.
func createTrigger(t *testing.T, b *testBundle, appID, topic string) store.Trigger {
	t.Helper()
	tr := newTrigger(appID, topic)
	require.NoError(t, outboxOf(t, b).CreateTrigger(b.ctx, tr))
	return tr
}

// newTrigger returns a trigger of (appID, topic) with a fresh id, URL and
// secret, not stored.
func newTrigger(appID, topic string) store.Trigger {
	id := newID()
	return store.Trigger{
		ID: id, AppID: appID, Topic: topic,
		URL:       "https://hooks.example.com/" + strings.ToLower(id),
		Secret:    "whsec_" + newID(),
		CreatedAt: now(),
	}
}

// later is a time at which every delivery enqueued so far is due.
func later() time.Time {
	return now().Add(time.Hour)
}

// claimAll claims every delivery due at at, leased for a minute.
func claimAll(t *testing.T, b *testBundle, at time.Time) []store.Delivery {
	t.Helper()
	ds, err := outboxOf(t, b).Claim(b.ctx, at, time.Minute, 100_000)
	require.NoError(t, err)
	return ds
}

// listTriggers returns a topic's triggers, which must exist.
func listTriggers(t *testing.T, b *testBundle, appID, topic string) []store.TriggerStats {
	t.Helper()
	ts, err := outboxOf(t, b).ListTriggers(b.ctx, appID, topic)
	require.NoError(t, err)
	return ts
}

// settle settles a claimed delivery, which must succeed.
func settle(t *testing.T, b *testBundle, d store.Delivery, state store.DeliveryState, at time.Time) {
	t.Helper()
	require.NoError(t, outboxOf(t, b).Settle(b.ctx, store.Outcome{
		DeliveryID: d.ID, LeaseUntil: d.LeaseUntil, State: state,
		Status: 500, Error: "server error", At: at,
	}))
}

// deliveryIDs returns the ids of ds, sorted.
func deliveryIDs(ds []store.Delivery) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

// requireTrigger checks that got is the trigger want.
func requireTrigger(t *testing.T, want, got store.Trigger) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.AppID, got.AppID)
	require.Equal(t, want.Topic, got.Topic)
	require.Equal(t, want.URL, got.URL)
	require.Equal(t, want.Secret, got.Secret)
	require.Equal(t, want.Disabled, got.Disabled)
	requireSameTime(t, want.CreatedAt, got.CreatedAt)
}

// requireCounts checks a trigger's delivery counts.
func requireCounts(t *testing.T, ts store.TriggerStats, pending, delivered, dead int64) {
	t.Helper()
	require.Equal(t, [3]int64{pending, delivered, dead}, [3]int64{ts.Pending, ts.Delivered, ts.Dead},
		"trigger %s: pending, delivered, dead", ts.ID)
}

func testOutbox(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("Triggers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		createTopic(t, b, app.ID, "quiet")

		first := createTrigger(t, b, app.ID, "orders")
		second := store.Trigger{
			ID: newID(), AppID: app.ID, Topic: "orders", URL: "https://b.example.com/x?y=1",
			Secret: "whsec_b", Disabled: true, CreatedAt: first.CreatedAt.Add(time.Millisecond),
		}
		require.NoError(t, ob.CreateTrigger(b.ctx, second))

		got := listTriggers(t, b, app.ID, "orders")
		require.Len(t, got, 2)
		requireTrigger(t, first, got[0].Trigger)
		requireTrigger(t, second, got[1].Trigger)
		requireCounts(t, got[0], 0, 0, 0)
		require.Empty(t, listTriggers(t, b, app.ID, "quiet"))

		// A zero CreatedAt is now.
		third := store.Trigger{ID: newID(), AppID: app.ID, Topic: "quiet", URL: "https://c.example.com", Secret: "whsec_c"}
		require.NoError(t, ob.CreateTrigger(b.ctx, third))
		got = listTriggers(t, b, app.ID, "quiet")
		require.Len(t, got, 1)
		require.WithinDuration(t, time.Now(), got[0].CreatedAt, time.Minute)

		dup := first
		dup.Topic = "quiet"
		require.ErrorIs(t, ob.CreateTrigger(b.ctx, dup), store.ErrConflict)
		for _, bad := range []store.Trigger{
			{ID: newID(), AppID: app.ID, Topic: "missing", URL: "https://x", Secret: "s"},
			{ID: newID(), AppID: "no-such-app", Topic: "orders", URL: "https://x", Secret: "s"},
		} {
			requireNotFound(t, ob.CreateTrigger(b.ctx, bad))
		}
		_, err := ob.ListTriggers(b.ctx, app.ID, "missing")
		requireNotFound(t, err)
		_, err = ob.ListTriggers(b.ctx, "no-such-app", "orders")
		requireNotFound(t, err)

		// Delete: only through the trigger's own topic.
		requireNotFound(t, ob.DeleteTrigger(b.ctx, app.ID, "quiet", first.ID))
		requireNotFound(t, ob.DeleteTrigger(b.ctx, "no-such-app", "orders", first.ID))
		requireNotFound(t, ob.DeleteTrigger(b.ctx, app.ID, "orders", "no-such-trigger"))
		require.NoError(t, ob.DeleteTrigger(b.ctx, app.ID, "orders", first.ID))
		requireNotFound(t, ob.DeleteTrigger(b.ctx, app.ID, "orders", first.ID))
		got = listTriggers(t, b, app.ID, "orders")
		require.Len(t, got, 1)
		requireTrigger(t, second, got[0].Trigger)
	})

	t.Run("DeletesCascade", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		other := createApp(t, b)
		createTopic(t, b, app.ID, "a")
		createTopic(t, b, app.ID, "b")
		createTopic(t, b, other.ID, "a")
		trA := createTrigger(t, b, app.ID, "a")
		createTrigger(t, b, app.ID, "b")
		trOther := createTrigger(t, b, other.ID, "a")
		publish(t, b, app.ID, "a", `1`)
		publish(t, b, app.ID, "b", `2`)
		publish(t, b, other.ID, "a", `3`)

		// Deleting a trigger deletes its deliveries.
		require.NoError(t, ob.DeleteTrigger(b.ctx, app.ID, "a", trA.ID))
		// Deleting a topic deletes its triggers and their deliveries: the
		// topic made again has none.
		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "b"))
		createTopic(t, b, app.ID, "b")
		require.Empty(t, listTriggers(t, b, app.ID, "b"))
		publish(t, b, app.ID, "b", `4`)

		ds := claimAll(t, b, later())
		require.Len(t, ds, 1, "only the other app's delivery is left")
		require.Equal(t, trOther.ID, ds[0].TriggerID)
		settle(t, b, ds[0], store.DeliveryDead, now())

		// Deleting an app deletes everything of it.
		createTopic(t, b, app.ID, "c")
		createTrigger(t, b, app.ID, "c")
		publish(t, b, app.ID, "c", `5`)
		require.NoError(t, b.st.DeleteApp(b.ctx, app.ID))
		require.Empty(t, claimAll(t, b, later()))
		_, err := ob.DeadLetters(b.ctx, app.ID, 10)
		requireNotFound(t, err)
		dead, err := ob.DeadLetters(b.ctx, other.ID, 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
	})

	t.Run("PublishEnqueuesOnePerTriggerPerMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		triggers := map[string][]store.Trigger{}
		for _, tc := range []struct {
			topic string
			n     int
		}{{"none", 0}, {"one", 1}, {"three", 3}} {
			createTopic(t, b, app.ID, tc.topic)
			for range tc.n {
				triggers[tc.topic] = append(triggers[tc.topic], createTrigger(t, b, app.ID, tc.topic))
			}
		}
		// A disabled trigger gets nothing.
		require.NoError(t, outboxOf(t, b).CreateTrigger(b.ctx, store.Trigger{
			ID: newID(), AppID: app.ID, Topic: "one", URL: "https://off.example.com", Secret: "s", Disabled: true,
		}))

		var msgs []store.Message
		for i := range 2 {
			for _, topic := range []string{"none", "one", "three"} {
				msgs = append(msgs, publish(t, b, app.ID, topic, fmt.Sprintf(`{"topic":%q,"i":%d}`, topic, i)))
			}
		}

		ds := claimAll(t, b, later())
		require.Len(t, ds, 2*(0+1+3))
		byTrigger := map[string]store.Trigger{}
		for _, trs := range triggers {
			for _, tr := range trs {
				byTrigger[tr.ID] = tr
			}
		}
		type pair struct {
			trigger string
			message uint64
		}
		seen := map[pair]bool{}
		seenIDs := map[string]bool{}
		for _, d := range ds {
			tr, ok := byTrigger[d.TriggerID]
			require.True(t, ok, "delivery for unknown or disabled trigger %s", d.TriggerID)
			require.Equal(t, app.ID, d.AppID)
			require.Equal(t, tr.Topic, d.Topic)
			require.Equal(t, tr.URL, d.URL)
			require.Equal(t, tr.Secret, d.Secret)
			require.Equal(t, store.DeliveryPending, d.State)
			require.Equal(t, 1, d.Attempts)
			require.True(t, strings.HasPrefix(d.ID, "msg_"), "delivery id %q", d.ID)
			require.Len(t, d.ID, 30)
			require.False(t, seenIDs[d.ID], "delivery id %s twice", d.ID)
			seenIDs[d.ID] = true
			p := pair{d.TriggerID, d.MessageID}
			require.False(t, seen[p], "two deliveries of message %d to trigger %s", d.MessageID, d.TriggerID)
			seen[p] = true

			i := slices.IndexFunc(msgs, func(m store.Message) bool { return m.Topic == d.Topic && m.ID == d.MessageID })
			require.GreaterOrEqual(t, i, 0, "delivery of unknown message %s/%d", d.Topic, d.MessageID)
			require.Equal(t, string(msgs[i].Body), string(d.Body), "body copied")
			requireSameTime(t, msgs[i].PublishedAt, d.PublishedAt)
			requireSameTime(t, msgs[i].PublishedAt, d.CreatedAt)
			requireUTC(t, d.LeaseUntil)
		}

		stats := listTriggers(t, b, app.ID, "one")
		require.Len(t, stats, 2)
		requireCounts(t, stats[0], 2, 0, 0)
		requireCounts(t, stats[1], 0, 0, 0)
	})

	t.Run("ClaimRespectsDueTimeAndLeases", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		tr := createTrigger(t, b, app.ID, "t")
		msg := publish(t, b, app.ID, "t", `{"x":1}`)

		// Not due before its message was published.
		early, err := ob.Claim(b.ctx, msg.PublishedAt.Add(-time.Second), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, early)

		t1 := msg.PublishedAt.Add(time.Second)
		first, err := ob.Claim(b.ctx, t1, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, first, 1)
		d := first[0]
		require.Equal(t, tr.ID, d.TriggerID)
		require.Equal(t, msg.ID, d.MessageID)
		require.Equal(t, 1, d.Attempts)
		requireSameTime(t, t1.Add(time.Minute), d.LeaseUntil)

		// Leased: nobody else gets it until the lease runs out.
		again, err := ob.Claim(b.ctx, t1.Add(30*time.Second), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, again)
		again, err = ob.Claim(b.ctx, t1.Add(time.Minute-time.Microsecond), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, again)

		// Run out: claimed again, same id, a second attempt.
		t2 := t1.Add(time.Minute)
		second, err := ob.Claim(b.ctx, t2, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, second, 1)
		require.Equal(t, d.ID, second[0].ID)
		require.Equal(t, 2, second[0].Attempts)
		requireSameTime(t, t2.Add(time.Minute), second[0].LeaseUntil)

		// The first claim's outcome comes too late.
		err = ob.Settle(b.ctx, store.Outcome{DeliveryID: d.ID, LeaseUntil: d.LeaseUntil, State: store.DeliveryDelivered, Status: 200, At: t2})
		require.ErrorIs(t, err, store.ErrConflict)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 0, 0)

		// A retry: due at NextAt, with the attempt's status and error.
		retryAt := t2.Add(10 * time.Second)
		require.NoError(t, ob.Settle(b.ctx, store.Outcome{
			DeliveryID: d.ID, LeaseUntil: second[0].LeaseUntil, State: store.DeliveryPending,
			NextAt: retryAt, Status: 503, Error: "unavailable", At: t2.Add(time.Second),
		}))
		// Settled once: the same outcome again finds no lease.
		err = ob.Settle(b.ctx, store.Outcome{DeliveryID: d.ID, LeaseUntil: second[0].LeaseUntil, State: store.DeliveryDelivered, At: t2})
		require.ErrorIs(t, err, store.ErrConflict)
		none, err := ob.Claim(b.ctx, retryAt.Add(-time.Microsecond), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, none)
		third, err := ob.Claim(b.ctx, retryAt, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, third, 1)
		require.Equal(t, 3, third[0].Attempts)
		require.Equal(t, 503, third[0].LastStatus)
		require.Equal(t, "unavailable", third[0].LastError)
		requireSameTime(t, t2.Add(time.Second), third[0].UpdatedAt)

		// An outcome after the lease ran out, before anyone claimed again,
		// is recorded: the attempt happened.
		require.NoError(t, ob.Settle(b.ctx, store.Outcome{
			DeliveryID: d.ID, LeaseUntil: third[0].LeaseUntil, State: store.DeliveryDelivered,
			Status: 204, At: third[0].LeaseUntil.Add(time.Second),
		}))
		require.Empty(t, claimAll(t, b, later().Add(time.Hour)))
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 0, 1, 0)

		requireNotFound(t, ob.Settle(b.ctx, store.Outcome{DeliveryID: "msg_nosuch", LeaseUntil: t2, State: store.DeliveryDelivered}))
		require.Error(t, ob.Settle(b.ctx, store.Outcome{DeliveryID: d.ID, LeaseUntil: t2, State: "lost"}))
		_, err = ob.Claim(b.ctx, later(), 0, 10)
		require.Error(t, err, "a lease must be positive")
		zero, err := ob.Claim(b.ctx, later(), time.Minute, 0)
		require.NoError(t, err)
		require.Empty(t, zero)
	})

	t.Run("ClaimOldestDueFirstUpToLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")
		for i := range 4 {
			publish(t, b, app.ID, "t", fmt.Sprint(i))
		}
		ds := claimAll(t, b, later())
		require.Len(t, ds, 4)
		// Due in the order 2, 0, 3, 1 (by message id).
		slices.SortFunc(ds, func(a, b store.Delivery) int { return int(a.MessageID) - int(b.MessageID) })
		base := later().Add(time.Hour)
		for i, offset := range []int{2, 4, 1, 3} {
			require.NoError(t, ob.Settle(b.ctx, store.Outcome{
				DeliveryID: ds[i].ID, LeaseUntil: ds[i].LeaseUntil, State: store.DeliveryPending,
				NextAt: base.Add(time.Duration(offset) * time.Second), At: later(),
			}))
		}
		at := base.Add(10 * time.Second)
		got, err := ob.Claim(b.ctx, at, time.Minute, 2)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, []uint64{3, 1}, []uint64{got[0].MessageID, got[1].MessageID})
		got, err = ob.Claim(b.ctx, at, time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, []uint64{4, 2}, []uint64{got[0].MessageID, got[1].MessageID})
	})

	t.Run("DisableTrigger", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		gone := createTrigger(t, b, app.ID, "t")
		kept := createTrigger(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		publish(t, b, app.ID, "t", `2`)

		ds, err := ob.Claim(b.ctx, later(), time.Minute, 100)
		require.NoError(t, err)
		i := slices.IndexFunc(ds, func(d store.Delivery) bool { return d.TriggerID == gone.ID })
		require.GreaterOrEqual(t, i, 0)
		require.NoError(t, ob.Settle(b.ctx, store.Outcome{
			DeliveryID: ds[i].ID, LeaseUntil: ds[i].LeaseUntil, State: store.DeliveryDead,
			DisableTrigger: true, Status: 410, Error: "gone", At: later(),
		}))
		stats := listTriggers(t, b, app.ID, "t")
		require.True(t, stats[0].Disabled)
		require.False(t, stats[1].Disabled)

		// The disabled trigger's pending delivery is passed over, and new
		// messages enqueue nothing for it.
		publish(t, b, app.ID, "t", `3`)
		ds = claimAll(t, b, later().Add(time.Hour))
		for _, d := range ds {
			require.Equal(t, kept.ID, d.TriggerID)
		}
		require.Len(t, ds, 3, "the enabled trigger's three deliveries, after their lease")
		stats = listTriggers(t, b, app.ID, "t")
		requireCounts(t, stats[0], 1, 0, 1)
		requireCounts(t, stats[1], 3, 0, 0)

		// Its dead letter cannot be redriven: it would never be attempted.
		err = ob.Redrive(b.ctx, app.ID, deadLetterOf(t, b, app.ID, gone.ID), later())
		require.ErrorIs(t, err, store.ErrConflict)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 0, 1)
	})

	t.Run("DeadLettersAndRedrive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		other := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTopic(t, b, other.ID, "t")
		tr := createTrigger(t, b, app.ID, "t")
		createTrigger(t, b, other.ID, "t")
		for i := range 3 {
			publish(t, b, app.ID, "t", fmt.Sprint(i))
		}
		publish(t, b, other.ID, "t", `"other"`)

		ds := claimAll(t, b, later())
		require.Len(t, ds, 4)
		slices.SortFunc(ds, func(a, b store.Delivery) int {
			return strings.Compare(fmt.Sprint(a.AppID, a.MessageID), fmt.Sprint(b.AppID, b.MessageID))
		})
		base := later()
		var newest time.Time
		for i, d := range ds {
			at := base.Add(time.Duration(i) * time.Second)
			settle(t, b, d, store.DeliveryDead, at)
			if d.AppID == app.ID {
				newest = at
			}
		}

		dead, err := ob.DeadLetters(b.ctx, app.ID, 10)
		require.NoError(t, err)
		require.Len(t, dead, 3)
		require.Equal(t, []uint64{3, 2, 1}, []uint64{dead[0].MessageID, dead[1].MessageID, dead[2].MessageID}, "newest first")
		for _, d := range dead {
			require.Equal(t, store.DeliveryDead, d.State)
			require.Equal(t, app.ID, d.AppID)
			require.Equal(t, "t", d.Topic)
			require.Equal(t, tr.ID, d.TriggerID)
			require.Equal(t, tr.URL, d.URL)
			require.Empty(t, d.Secret, "dead letters do not show the secret")
			require.Equal(t, 1, d.Attempts)
			require.Equal(t, 500, d.LastStatus)
			require.Equal(t, "server error", d.LastError)
			require.True(t, d.LeaseUntil.IsZero(), "a settled delivery holds no lease")
			requireUTC(t, d.UpdatedAt)
		}
		requireSameTime(t, newest, dead[0].UpdatedAt)
		limited, err := ob.DeadLetters(b.ctx, app.ID, 2)
		require.NoError(t, err)
		require.Equal(t, deliveryIDs(dead[:2]), deliveryIDs(limited))
		otherDead, err := ob.DeadLetters(b.ctx, other.ID, 10)
		require.NoError(t, err)
		require.Len(t, otherDead, 1)
		require.Equal(t, other.ID, otherDead[0].AppID)
		_, err = ob.DeadLetters(b.ctx, "no-such-app", 10)
		requireNotFound(t, err)

		// Two redrives give one delivery, with its id and a fresh count.
		oldest := dead[2]
		redriveAt := base.Add(time.Hour)
		require.NoError(t, ob.Redrive(b.ctx, app.ID, oldest.ID, redriveAt))
		require.NoError(t, ob.Redrive(b.ctx, app.ID, oldest.ID, redriveAt.Add(time.Second)))
		requireNotFound(t, ob.Redrive(b.ctx, other.ID, oldest.ID, redriveAt))
		requireNotFound(t, ob.Redrive(b.ctx, app.ID, "msg_nosuch", redriveAt))
		dead, err = ob.DeadLetters(b.ctx, app.ID, 10)
		require.NoError(t, err)
		require.Len(t, dead, 2)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 0, 2)

		none, err := ob.Claim(b.ctx, redriveAt.Add(-time.Microsecond), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, none, "due at the redrive's now")
		got, err := ob.Claim(b.ctx, redriveAt.Add(time.Second), time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, oldest.ID, got[0].ID)
		require.Equal(t, oldest.MessageID, got[0].MessageID)
		require.Equal(t, string(oldest.Body), string(got[0].Body))
		require.Equal(t, 1, got[0].Attempts, "redrive starts the count again")
		require.Equal(t, tr.Secret, got[0].Secret)

		// Redriving a pending (leased) one changes nothing; a delivered one
		// says so, and stays delivered.
		require.NoError(t, ob.Redrive(b.ctx, app.ID, oldest.ID, redriveAt))
		none, err = ob.Claim(b.ctx, redriveAt.Add(2*time.Second), time.Minute, 10)
		require.NoError(t, err)
		require.Empty(t, none, "the redrive of a leased delivery released it")
		settle(t, b, got[0], store.DeliveryDelivered, redriveAt.Add(3*time.Second))
		require.ErrorIs(t, ob.Redrive(b.ctx, app.ID, oldest.ID, redriveAt), store.ErrDelivered)
		require.Empty(t, claimAll(t, b, redriveAt.Add(time.Hour)))
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 0, 1, 2)
	})

	t.Run("PruneDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")
		for i := range 5 {
			publish(t, b, app.ID, "t", fmt.Sprint(i))
		}
		ds := claimAll(t, b, later())
		require.Len(t, ds, 5)
		base := later()
		settle(t, b, ds[0], store.DeliveryDelivered, base)
		settle(t, b, ds[1], store.DeliveryDelivered, base.Add(time.Hour))
		settle(t, b, ds[2], store.DeliveryDead, base)
		settle(t, b, ds[3], store.DeliveryDead, base.Add(time.Hour))
		// ds[4] stays pending.

		// Settled exactly at the cutoff is not before it.
		n, err := ob.PruneDeliveries(b.ctx, base, base)
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = ob.PruneDeliveries(b.ctx, base.Add(time.Microsecond), base)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 1, 2)
		n, err = ob.PruneDeliveries(b.ctx, base, base.Add(2*time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 1, 0)
		n, err = ob.PruneDeliveries(b.ctx, base.AddDate(10, 0, 0), base.AddDate(10, 0, 0))
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "pending deliveries are never pruned")
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 0, 0)
		dead, err := ob.DeadLetters(b.ctx, app.ID, 10)
		require.NoError(t, err)
		require.Empty(t, dead)
	})

	t.Run("ManyDeliveriesPrunedInChunks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		for range 3 {
			createTrigger(t, b, app.ID, "t")
		}
		for i := range 20 {
			publish(t, b, app.ID, "t", fmt.Sprint(i))
		}
		ds := claimAll(t, b, later())
		require.Len(t, ds, 60)
		for _, d := range ds {
			settle(t, b, d, store.DeliveryDelivered, later())
		}
		n, err := ob.PruneDeliveries(b.ctx, later().Add(time.Hour), later())
		require.NoError(t, err)
		require.Equal(t, int64(60), n)
	})

	t.Run("IdempotentPublish", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		other := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTopic(t, b, app.ID, "u")
		createTopic(t, b, other.ID, "t")
		createTrigger(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")

		calls := 0
		req := store.PublishRequest{
			AppID: app.ID, Topic: "t", Body: []byte(`{"order":1}`), IdempotencyKey: "key-1",
			CommittedFunc: func(store.Message) { calls++ },
		}
		first, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		require.Equal(t, 1, calls)
		// The retry may even carry another body: the key decides.
		req.Body = []byte(`{"order":"retried"}`)
		again, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		requireMessage(t, first, again)
		require.Equal(t, 1, calls, "CommittedFunc called for a repeat")
		requireMessages(t, []store.Message{first}, history(t, b, app.ID, "t"))
		for _, ts := range listTriggers(t, b, app.ID, "t") {
			requireCounts(t, ts, 1, 0, 0)
		}

		// The key with another topic of the app is a conflict, and stores
		// nothing.
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "u", Body: []byte(`1`), IdempotencyKey: "key-1"})
		require.ErrorIs(t, err, store.ErrConflict)
		require.Empty(t, history(t, b, app.ID, "u"))
		// Keys are per app; no key means no deduplication.
		otherMsg, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: other.ID, Topic: "t", Body: []byte(`2`), IdempotencyKey: "key-1"})
		require.NoError(t, err)
		require.Equal(t, uint64(1), otherMsg.ID)
		require.Equal(t, uint64(2), publish(t, b, app.ID, "t", `{"order":1}`).ID)
		require.Equal(t, uint64(3), publish(t, b, app.ID, "t", `{"order":1}`).ID)
		// A missing topic is still not found.
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "missing", Body: []byte(`1`), IdempotencyKey: "key-2"})
		requireNotFound(t, err)
	})

	t.Run("IdempotencyKeyOutlivesHistoryNotWindow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTopic(t, b, app.ID, "gone")
		req := store.PublishRequest{AppID: app.ID, Topic: "t", Body: []byte(`"x"`), IdempotencyKey: "k"}
		first, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)

		// History pruned within the window: the key still answers, with
		// the message's id and stamp but no body.
		n, err := b.st.Prune(b.ctx, store.Retention{Keep: 0, MaxAge: time.Minute}, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		again, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		require.Equal(t, first.ID, again.ID)
		require.Equal(t, "t", again.Topic)
		requireSameTime(t, first.PublishedAt, again.PublishedAt)
		require.Nil(t, again.Body)

		// Past the window Prune forgets the key, and the publish is new.
		_, err = b.st.Prune(b.ctx, store.Retention{Keep: 1000, MaxAge: 1000 * time.Hour}, time.Now().Add(store.IdempotencyWindow+time.Minute))
		require.NoError(t, err)
		fresh, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		require.Equal(t, first.ID+1, fresh.ID)

		// Deleting a topic forgets its keys.
		gone := store.PublishRequest{AppID: app.ID, Topic: "gone", Body: []byte(`1`), IdempotencyKey: "g"}
		_, err = b.st.Publish(b.ctx, gone)
		require.NoError(t, err)
		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "gone"))
		createTopic(t, b, app.ID, "gone")
		reborn, err := b.st.Publish(b.ctx, gone)
		require.NoError(t, err)
		require.Equal(t, uint64(1), reborn.ID)
		require.Len(t, history(t, b, app.ID, "gone"), 1)
	})

	t.Run("IdempotencyKeyPruneBoundary", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		req := store.PublishRequest{AppID: app.ID, Topic: "t", Body: []byte(`1`), IdempotencyKey: "k"}
		first, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		retention := store.Retention{Keep: 1000, MaxAge: 1000 * time.Hour}

		// A key's window runs from its message's stamp: one microsecond
		// before it ends, Prune keeps the key...
		end := first.PublishedAt.Add(store.IdempotencyWindow)
		_, err = b.st.Prune(b.ctx, retention, end.Add(-time.Microsecond))
		require.NoError(t, err)
		again, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		requireMessage(t, first, again)
		// ... and the moment it ends (stamp + window, exactly), the key is
		// forgotten, as a lookup would no longer find it.
		_, err = b.st.Prune(b.ctx, retention, end)
		require.NoError(t, err)
		fresh, err := b.st.Publish(b.ctx, req)
		require.NoError(t, err)
		require.Equal(t, first.ID+1, fresh.ID)
	})

	t.Run("ConcurrentPublishesWithOneKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")
		const publishers, rounds = 8, 5

		for r := range rounds {
			key := fmt.Sprintf("key-%d", r)
			got := make([]store.Message, publishers)
			errs := make([]error, publishers)
			var committed sync.Map
			var wg sync.WaitGroup
			start := make(chan struct{})
			for p := range publishers {
				wg.Go(func() {
					<-start
					got[p], errs[p] = b.st.Publish(b.ctx, store.PublishRequest{
						AppID: app.ID, Topic: "t", Body: fmt.Appendf(nil, `{"p":%d}`, p), IdempotencyKey: key,
						CommittedFunc: func(m store.Message) { committed.Store(m.ID, true) },
					})
				})
			}
			close(start)
			wg.Wait()
			for p := range publishers {
				require.NoError(t, errs[p])
				requireMessage(t, got[0], got[p])
			}
			require.Equal(t, uint64(r+1), got[0].ID)
			n := 0
			committed.Range(func(any, any) bool { n++; return true })
			require.Equal(t, 1, n, "CommittedFunc calls")
		}
		require.Equal(t, Seq(1, rounds), IDs(history(t, b, app.ID, "t")))
		for _, ts := range listTriggers(t, b, app.ID, "t") {
			requireCounts(t, ts, rounds, 0, 0)
		}
	})

	t.Run("MethodsReturnErrClosed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ob := outboxOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		tr := createTrigger(t, b, app.ID, "t")
		require.NoError(t, b.st.Close())

		ctx := context.WithoutCancel(b.ctx)
		calls := map[string]func() error{
			"CreateTrigger": func() error {
				return ob.CreateTrigger(ctx, store.Trigger{ID: newID(), AppID: app.ID, Topic: "t", URL: "https://x", Secret: "s"})
			},
			"ListTriggers":  func() error { _, err := ob.ListTriggers(ctx, app.ID, "t"); return err },
			"DeleteTrigger": func() error { return ob.DeleteTrigger(ctx, app.ID, "t", tr.ID) },
			"Claim":         func() error { _, err := ob.Claim(ctx, later(), time.Minute, 10); return err },
			"Settle": func() error {
				return ob.Settle(ctx, store.Outcome{DeliveryID: "msg_x", LeaseUntil: later(), State: store.DeliveryDelivered})
			},
			"DeadLetters": func() error { _, err := ob.DeadLetters(ctx, app.ID, 10); return err },
			"Redrive":     func() error { return ob.Redrive(ctx, app.ID, "msg_x", later()) },
			"PruneDeliveries": func() error {
				_, err := ob.PruneDeliveries(ctx, later(), later())
				return err
			},
		}
		for name, call := range calls {
			err := call()
			require.True(t, errors.Is(err, store.ErrClosed), "%s: want ErrClosed, got %v", name, err)
		}
	})
}

// deadLetterOf returns the id of the newest dead letter of trigger triggerID.
func deadLetterOf(t *testing.T, b *testBundle, appID, triggerID string) string {
	t.Helper()
	dead, err := outboxOf(t, b).DeadLetters(b.ctx, appID, 100)
	require.NoError(t, err)
	for _, d := range dead {
		if d.TriggerID == triggerID {
			return d.ID
		}
	}
	require.FailNow(t, "no dead letter", "of trigger %s", triggerID)
	return ""
}
