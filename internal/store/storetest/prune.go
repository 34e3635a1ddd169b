package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// pruned is what the retention rule keeps of a topic's history: a message
// goes only when it is older than r.MaxAge at now and not among the newest
// r.Keep.
func pruned(msgs []store.Message, r store.Retention, now time.Time) (kept []store.Message) {
	for i, m := range msgs {
		newest := len(msgs)-i <= r.Keep
		old := now.Sub(m.PublishedAt) > r.MaxAge
		if newest || !old {
			kept = append(kept, m)
		}
	}
	return kept
}

func testPrune(t *testing.T, setup setupFunc) {
	t.Helper()

	// fill publishes n messages to a new topic and returns them.
	fill := func(t *testing.T, b *testBundle, appID, topic string, n int) []store.Message {
		t.Helper()
		createTopic(t, b, appID, topic)
		var msgs []store.Message
		for i := range n {
			msgs = append(msgs, publish(t, b, appID, topic, fmt.Sprintf(`{"i":%d}`, i)))
		}
		return msgs
	}

	t.Run("FarFutureKeepsNewest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		other := createApp(t, b)
		long := fill(t, b, app.ID, "long", 10)
		short := fill(t, b, app.ID, "short", 2)
		otherLong := fill(t, b, other.ID, "long", 5)
		fill(t, b, app.ID, "empty", 0)

		r := store.Retention{Keep: 3, MaxAge: time.Hour}
		n, err := b.st.Prune(b.ctx, r, time.Now().AddDate(10, 0, 0))
		require.NoError(t, err)
		require.Equal(t, int64(7+0+2), n)

		requireMessages(t, long[7:], history(t, b, app.ID, "long"))
		requireMessages(t, short, history(t, b, app.ID, "short"))
		requireMessages(t, otherLong[2:], history(t, b, other.ID, "long"))
		require.Empty(t, history(t, b, app.ID, "empty"))

		// Pruning keeps the topic's count: ids go on from the last one.
		topic, err := b.st.GetTopic(b.ctx, app.ID, "long")
		require.NoError(t, err)
		require.Equal(t, uint64(10), topic.LastID)
		require.Equal(t, uint64(11), publish(t, b, app.ID, "long", `11`).ID)

		// Nothing left to prune.
		n, err = b.st.Prune(b.ctx, r, time.Now().AddDate(10, 0, 0))
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "the newest publish pushed one more out")
		n, err = b.st.Prune(b.ctx, r, time.Now().AddDate(10, 0, 0))
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("PresentKeepsYoung", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		msgs := fill(t, b, app.ID, "young", 10)

		n, err := b.st.Prune(b.ctx, store.Retention{Keep: 3, MaxAge: time.Hour}, time.Now())
		require.NoError(t, err)
		require.Zero(t, n)
		requireMessages(t, msgs, history(t, b, app.ID, "young"))
	})

	t.Run("KeepZeroFarFutureEmptiesHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		fill(t, b, app.ID, "all", 4)

		n, err := b.st.Prune(b.ctx, store.Retention{Keep: 0, MaxAge: time.Hour}, time.Now().AddDate(10, 0, 0))
		require.NoError(t, err)
		require.Equal(t, int64(4), n)
		require.Empty(t, history(t, b, app.ID, "all"))
		require.Equal(t, uint64(5), publish(t, b, app.ID, "all", `5`).ID)
	})

	t.Run("AgeBoundaryFollowsPublishedAt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		msgs := fill(t, b, app.ID, "edge", 8)
		r := store.Retention{Keep: 2, MaxAge: time.Hour}

		// Exactly MaxAge old is not older than MaxAge: message 3 stays.
		at := msgs[2].PublishedAt.Add(r.MaxAge)
		want := pruned(msgs, r, at)
		n, err := b.st.Prune(b.ctx, r, at)
		require.NoError(t, err)
		require.Equal(t, int64(len(msgs)-len(want)), n)
		requireMessages(t, want, history(t, b, app.ID, "edge"))

		// A nanosecond later it goes.
		at = at.Add(time.Nanosecond)
		want2 := pruned(want, r, at)
		require.Less(t, len(want2), len(want))
		n, err = b.st.Prune(b.ctx, r, at)
		require.NoError(t, err)
		require.Equal(t, int64(len(want)-len(want2)), n)
		requireMessages(t, want2, history(t, b, app.ID, "edge"))
	})

	t.Run("ManyMessages", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		msgs := fill(t, b, app.ID, "big", 120)

		n, err := b.st.Prune(b.ctx, store.Retention{Keep: 7, MaxAge: time.Minute}, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(113), n)
		requireMessages(t, msgs[113:], history(t, b, app.ID, "big"))
	})

	// The chunk and page sizes are the store's; the cases below pass
	// whatever they are, and cross the defaults (1000 messages a chunk,
	// 1000 topics a page), where a loop that stops one chunk or one page
	// early would leave messages behind.
	t.Run("ChunkBoundaries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "big")
		const n = 2001
		for start := 0; start < n; start += 1000 {
			var reqs []store.PublishRequest
			for i := start; i < min(start+1000, n); i++ {
				reqs = append(reqs, store.PublishRequest{AppID: app.ID, Topic: "big", Body: fmt.Appendf(nil, `%d`, i)})
			}
			_, err := b.st.PublishBatch(b.ctx, reqs)
			require.NoError(t, err)
		}

		deleted, err := b.st.Prune(b.ctx, store.Retention{Keep: 1}, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(n-1), deleted)
		msgs := history(t, b, app.ID, "big")
		require.Equal(t, []uint64{n}, IDs(msgs))
		topic, err := b.st.GetTopic(b.ctx, app.ID, "big")
		require.NoError(t, err)
		require.Equal(t, uint64(n), topic.LastID, "pruning never moves the last id")
	})

	t.Run("TopicsBeyondOnePage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		const topics = 1001
		reqs := make([]store.PublishRequest, 0, topics)
		for i := range topics {
			name := fmt.Sprintf("t%04d", i)
			createTopic(t, b, app.ID, name)
			reqs = append(reqs, store.PublishRequest{AppID: app.ID, Topic: name, Body: []byte(`1`)},
				store.PublishRequest{AppID: app.ID, Topic: name, Body: []byte(`2`)})
		}
		for start := 0; start < len(reqs); start += 1000 {
			_, err := b.st.PublishBatch(b.ctx, reqs[start:min(start+1000, len(reqs))])
			require.NoError(t, err)
		}

		deleted, err := b.st.Prune(b.ctx, store.Retention{Keep: 1}, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(topics), deleted)
		for _, name := range []string{"t0000", "t0999", "t1000"} {
			require.Equal(t, []uint64{2}, IDs(history(t, b, app.ID, name)), "topic %s", name)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		fill(t, b, app.ID, "t", 3)
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()
		_, err := b.st.Prune(ctx, store.Retention{Keep: 0, MaxAge: 0}, time.Now().Add(time.Hour))
		require.ErrorIs(t, err, context.Canceled)
		// Pruning, had it begun, never touches a topic's count.
		topic, err := b.st.GetTopic(b.ctx, app.ID, "t")
		require.NoError(t, err)
		require.Equal(t, uint64(3), topic.LastID)
	})
}
