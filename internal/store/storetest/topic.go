package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testTopics(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("CreateIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)

		first, created, err := b.st.CreateTopic(b.ctx, app.ID, "orders")
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, app.ID, first.AppID)
		require.Equal(t, "orders", first.Name)
		require.Zero(t, first.LastID)
		requireUTC(t, first.CreatedAt)

		again, created, err := b.st.CreateTopic(b.ctx, app.ID, "orders")
		require.NoError(t, err)
		require.False(t, created)
		requireTopic(t, first, again)

		got, err := b.st.GetTopic(b.ctx, app.ID, "orders")
		require.NoError(t, err)
		requireTopic(t, first, got)
	})

	t.Run("CreateExistingReportsLastID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		first := createTopic(t, b, app.ID, "orders")
		publish(t, b, app.ID, "orders", `1`)
		publish(t, b, app.ID, "orders", `2`)

		again, created, err := b.st.CreateTopic(b.ctx, app.ID, "orders")
		require.NoError(t, err)
		require.False(t, created)
		first.LastID = 2
		requireTopic(t, first, again)
	})

	t.Run("CreateInUnknownAppIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, _, err := b.st.CreateTopic(b.ctx, "no-such-app", "orders")
		requireNotFound(t, err)
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		_, err := b.st.GetTopic(b.ctx, app.ID, "news")
		requireNotFound(t, err)
		_, err = b.st.GetTopic(b.ctx, "no-such-app", "orders")
		requireNotFound(t, err)
	})

	t.Run("ListSortedByNameWithLastID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		other := createApp(t, b)
		created := map[string]store.Topic{}
		for _, name := range []string{"charlie", "alpha", "delta", "bravo"} {
			created[name] = createTopic(t, b, app.ID, name)
		}
		createTopic(t, b, other.ID, "aardvark")
		for range 3 {
			publish(t, b, app.ID, "delta", `{}`)
		}
		publish(t, b, app.ID, "alpha", `{}`)

		topics, err := b.st.ListTopics(b.ctx, app.ID)
		require.NoError(t, err)
		names := make([]string, 0, len(topics))
		for _, topic := range topics {
			names = append(names, topic.Name)
		}
		require.Equal(t, []string{"alpha", "bravo", "charlie", "delta"}, names)
		lastIDs := map[string]uint64{"alpha": 1, "bravo": 0, "charlie": 0, "delta": 3}
		for _, got := range topics {
			want := created[got.Name]
			want.LastID = lastIDs[got.Name]
			requireTopic(t, want, got)
		}
	})

	t.Run("ListEmptyAppIsEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		topics, err := b.st.ListTopics(b.ctx, app.ID)
		require.NoError(t, err)
		require.Empty(t, topics)
	})

	t.Run("ListUnknownAppIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.st.ListTopics(b.ctx, "no-such-app")
		requireNotFound(t, err)
	})

	t.Run("DeleteRemovesHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "doomed")
		createTopic(t, b, app.ID, "kept")
		publish(t, b, app.ID, "doomed", `1`)
		publish(t, b, app.ID, "kept", `1`)

		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "doomed"))

		_, err := b.st.GetTopic(b.ctx, app.ID, "doomed")
		requireNotFound(t, err)
		_, err = b.st.History(b.ctx, app.ID, "doomed", 0, 10)
		requireNotFound(t, err)
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "doomed", Body: []byte(`2`)})
		requireNotFound(t, err)
		topics, err := b.st.ListTopics(b.ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, topics, 1)
		require.Equal(t, "kept", topics[0].Name)
		require.Equal(t, []uint64{1}, IDs(history(t, b, app.ID, "kept")))
	})

	t.Run("DeleteUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		requireNotFound(t, b.st.DeleteTopic(b.ctx, app.ID, "never"))
		requireNotFound(t, b.st.DeleteTopic(b.ctx, "no-such-app", "never"))

		createTopic(t, b, app.ID, "once")
		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "once"))
		requireNotFound(t, b.st.DeleteTopic(b.ctx, app.ID, "once"))
	})

	// A deleted topic is gone with its history; a topic created later under
	// the same name is a new topic, and its ids start again at 1.
	t.Run("RecreatedAfterDeleteRestartsIDsAt1", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "orders")
		for range 3 {
			publish(t, b, app.ID, "orders", `"old"`)
		}
		require.NoError(t, b.st.DeleteTopic(b.ctx, app.ID, "orders"))

		topic := createTopic(t, b, app.ID, "orders")
		require.Zero(t, topic.LastID)
		require.Empty(t, history(t, b, app.ID, "orders"))
		msg := publish(t, b, app.ID, "orders", `"new"`)
		require.Equal(t, uint64(1), msg.ID)
		requireMessages(t, []store.Message{msg}, history(t, b, app.ID, "orders"))
	})
}
