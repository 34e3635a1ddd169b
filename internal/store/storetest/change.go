package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// testPublishAfterChange checks that a publish sees every change made
// before it to what publishes read (a topic's id, its last id, its
// triggers), whichever method made it: a store that keeps any of it in
// memory between publishes must not serve it stale. Each case publishes
// before the change too, so that there is something to keep.
func testPublishAfterChange(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("TriggerCreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		tr := createTrigger(t, b, app.ID, "t")
		msg := publish(t, b, app.ID, "t", `2`)

		ds := claimAll(t, b, later())
		require.Len(t, ds, 1, "a delivery for the message after the trigger, none for the one before")
		require.Equal(t, tr.ID, ds[0].TriggerID)
		require.Equal(t, msg.ID, ds[0].MessageID)
	})

	t.Run("TriggerDeleted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		tr := createTrigger(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		require.NoError(t, outboxOf(t, b).DeleteTrigger(b.ctx, app.ID, "t", tr.ID))
		require.Equal(t, uint64(2), publish(t, b, app.ID, "t", `2`).ID)
		require.Empty(t, claimAll(t, b, later()))
	})

	t.Run("TriggerDisabledAndEnabled", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ta := triggerAdminOf(t, b)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		tr := createTrigger(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		off, on := true, false
		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "t", tr.ID, store.TriggerUpdate{Disabled: &off}))
		publish(t, b, app.ID, "t", `2`)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 1, 0, 0)
		require.NoError(t, ta.UpdateTrigger(b.ctx, app.ID, "t", tr.ID, store.TriggerUpdate{Disabled: &on}))
		msg := publish(t, b, app.ID, "t", `3`)
		requireCounts(t, listTriggers(t, b, app.ID, "t")[0], 2, 0, 0)
		ds := claimAll(t, b, later())
		require.Len(t, ds, 2)
		require.ElementsMatch(t, []uint64{1, msg.ID}, []uint64{ds[0].MessageID, ds[1].MessageID})
	})

	t.Run("TopicDeletedAndCreatedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		// The only topic, so that a store that numbers topic rows may give
		// the new one the old one's number.
		createTopic(t, b, app.ID, "t")
		createTrigger(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		publish(t, b, app.ID, "t", `2`)
		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "t"))
		createTopic(t, b, app.ID, "t")

		msgs, err := b.st.PublishBatch(b.ctx, []store.PublishRequest{
			{AppID: app.ID, Topic: "t", Body: []byte(`3`)},
			{AppID: app.ID, Topic: "t", Body: []byte(`4`)},
		})
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2}, IDs(msgs))
		require.Equal(t, []uint64{1, 2, 3}, IDs(append(msgs, publish(t, b, app.ID, "t", `5`))))
		require.Equal(t, Seq(1, 3), IDs(history(t, b, app.ID, "t")))
		require.Empty(t, claimAll(t, b, later()), "the deleted topic's trigger is gone")
	})

	t.Run("AppDeletedAndCreatedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)
		publish(t, b, app.ID, "t", `2`)
		require.NoError(t, b.st.DeleteApp(b.ctx, app.ID))
		require.NoError(t, b.st.CreateApp(b.ctx, app, nil))
		createTopic(t, b, app.ID, "t")
		require.Equal(t, uint64(1), publish(t, b, app.ID, "t", `3`).ID)
		require.Equal(t, []uint64{1}, IDs(history(t, b, app.ID, "t")))
	})
}
