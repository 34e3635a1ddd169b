package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// limitStoreOf returns b's store as a store.LimitStore, which every store
// implements.
func limitStoreOf(t *testing.T, b *testBundle) store.LimitStore {
	t.Helper()
	ls, ok := b.st.(store.LimitStore)
	require.True(t, ok, "%T does not implement store.LimitStore; every store must", b.st)
	return ls
}

func testLimits(t *testing.T, setup setupFunc) {
	t.Run("DefaultsSetReplaceCascade", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := limitStoreOf(t, b)
		app := store.App{ID: newID(), Name: "a", CreatedAt: now()}
		require.NoError(t, b.st.CreateApp(b.ctx, app, nil))

		l, err := ls.AppLimits(b.ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, store.AppLimits{}, l, "an app without its own limits has the defaults")

		want := store.AppLimits{Streams: 5, PublishRate: 2.5, PublishBurst: 10, Topics: -1, Triggers: 3}
		require.NoError(t, ls.SetAppLimits(b.ctx, app.ID, want))
		l, err = ls.AppLimits(b.ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, want, l)

		require.NoError(t, ls.SetAppLimits(b.ctx, app.ID, store.AppLimits{Topics: 7}))
		l, err = ls.AppLimits(b.ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, store.AppLimits{Topics: 7}, l, "set replaces, it does not merge")

		_, err = ls.AppLimits(b.ctx, newID())
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, ls.SetAppLimits(b.ctx, newID(), want), store.ErrNotFound)

		require.NoError(t, b.st.DeleteApp(b.ctx, app.ID))
		_, err = ls.AppLimits(b.ctx, app.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, b.st.CreateApp(b.ctx, app, nil))
		l, err = ls.AppLimits(b.ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, store.AppLimits{}, l, "deleting the app deleted its limits")
	})
	t.Run("CountTriggers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := limitStoreOf(t, b)
		app, other := createApp(t, b).ID, createApp(t, b).ID
		for _, id := range []string{app, other} {
			for _, topic := range []string{"a", "b"} {
				createTopic(t, b, id, topic)
			}
		}
		n, err := ls.CountTriggers(b.ctx, app)
		require.NoError(t, err)
		require.Zero(t, n)
		createTrigger(t, b, app, "a")
		createTrigger(t, b, app, "a")
		createTrigger(t, b, app, "b")
		createTrigger(t, b, other, "a")
		n, err = ls.CountTriggers(b.ctx, app)
		require.NoError(t, err)
		require.Equal(t, 3, n, "over all its topics, and only its own")
		n, err = ls.CountTriggers(b.ctx, newID())
		require.NoError(t, err)
		require.Zero(t, n)
	})
	// An app id that some store cannot even hold as text names no app
	// there, and none here either: every store answers as for an unknown
	// app, never with a driver's encoding error.
	t.Run("IDNoStoreCanHoldIsNoApp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := limitStoreOf(t, b)
		for _, id := range []string{"a\x00b", "\xff\xfe"} {
			_, err := ls.AppLimits(b.ctx, id)
			requireNotFound(t, err)
			requireNotFound(t, ls.SetAppLimits(b.ctx, id, store.AppLimits{Topics: 1}))
			n, err := ls.CountTriggers(b.ctx, id)
			require.NoError(t, err)
			require.Zero(t, n)
		}
	})

	t.Run("CreatesWithinLimitRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := limitStoreOf(t, b)
		app := createApp(t, b).ID
		const limit, tries = 5, 40

		// Creates race past the limit: exactly limit of them succeed.
		topics := race(tries, func(i int) error {
			_, created, err := ls.CreateTopicWithin(b.ctx, app, fmt.Sprintf("t%d", i), limit)
			if err == nil && !created {
				return errors.New("a new name was not created")
			}
			return err
		})
		require.Equal(t, limit, topics[nil], "creates that succeeded: %v", topics)
		require.Equal(t, tries-limit, topics[store.ErrLimitReached], "creates refused: %v", topics)
		list, err := b.st.ListTopics(b.ctx, app)
		require.NoError(t, err)
		require.Len(t, list, limit)

		// At the limit, a topic that exists is returned, never refused.
		got, created, err := ls.CreateTopicWithin(b.ctx, app, list[0].Name, limit)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, list[0].Name, got.Name)
		_, _, err = ls.CreateTopicWithin(b.ctx, newID(), "t", limit)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, created, err = ls.CreateTopicWithin(b.ctx, app, "unlimited", 0)
		require.NoError(t, err)
		require.True(t, created, "0 is no limit")

		// Triggers, over all the app's topics.
		triggers := race(tries, func(i int) error {
			return ls.CreateTriggerWithin(b.ctx, newTrigger(app, list[i%len(list)].Name), limit, 0)
		})
		require.Equal(t, limit, triggers[nil], "creates that succeeded: %v", triggers)
		require.Equal(t, tries-limit, triggers[store.ErrLimitReached], "creates refused: %v", triggers)
		n, err := ls.CountTriggers(b.ctx, app)
		require.NoError(t, err)
		require.Equal(t, limit, n)
		err = ls.CreateTriggerWithin(b.ctx, store.Trigger{ID: newID(), AppID: app, Topic: "nope", URL: "https://x", Secret: "s", CreatedAt: now()}, limit+1, limit+1)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	// A topic's cap on triggers holds under racing creates as the app's
	// limit does, alone and together with it.
	t.Run("TriggersWithinTopicCapRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := limitStoreOf(t, b)
		app := createApp(t, b).ID
		for _, topic := range []string{"a", "b", "c"} {
			createTopic(t, b, app, topic)
		}
		trigger := func(topic string) store.Trigger { return newTrigger(app, topic) }
		countOn := func(topic string) int {
			ts, err := outboxOf(t, b).ListTriggers(b.ctx, app, topic)
			require.NoError(t, err)
			return len(ts)
		}

		// The topic's cap alone: exactly perTopic of the racers succeed.
		const perTopic, tries = 20, 40
		got := race(tries, func(int) error {
			return ls.CreateTriggerWithin(b.ctx, trigger("a"), 0, perTopic)
		})
		require.Equal(t, perTopic, got[nil], "creates that succeeded: %v", got)
		require.Equal(t, tries-perTopic, got[store.ErrTopicTriggersFull], "creates refused: %v", got)
		require.Equal(t, perTopic, countOn("a"))
		// The cap is per topic: another topic of the app still takes one.
		require.NoError(t, ls.CreateTriggerWithin(b.ctx, trigger("b"), 0, perTopic))
		// A full topic is named as such even when the app is full too.
		err := ls.CreateTriggerWithin(b.ctx, trigger("a"), perTopic+1, perTopic)
		require.ErrorIs(t, err, store.ErrTopicTriggersFull)
		require.NotErrorIs(t, err, store.ErrLimitReached)
		err = ls.CreateTriggerWithin(b.ctx, trigger("b"), perTopic+1, perTopic)
		require.ErrorIs(t, err, store.ErrLimitReached)
		require.NotErrorIs(t, err, store.ErrTopicTriggersFull)
		err = ls.CreateTriggerWithin(b.ctx, trigger("nope"), 0, perTopic)
		require.ErrorIs(t, err, store.ErrNotFound)

		// Both at once, racing on two topics: the app may take 6 more
		// (27 in all) and each topic 5, so exactly 6 succeed whatever the
		// order, no topic passes 5, and every other create is refused by
		// one cap or the other.
		const appMax, topicCap = perTopic + 1 + 6, 5
		got = race(tries, func(i int) error {
			topic := "b"
			if i%2 == 0 {
				topic = "c"
			}
			return ls.CreateTriggerWithin(b.ctx, trigger(topic), appMax, topicCap)
		})
		require.Equal(t, 6, got[nil], "creates that succeeded: %v", got)
		require.Equal(t, tries-6, got[store.ErrTopicTriggersFull]+got[store.ErrLimitReached], "creates refused: %v", got)
		n, err := ls.CountTriggers(b.ctx, app)
		require.NoError(t, err)
		require.Equal(t, appMax, n)
		require.LessOrEqual(t, countOn("b"), topicCap)
		require.LessOrEqual(t, countOn("c"), topicCap)
	})
}

// race runs n calls of f at once and counts their outcomes: nil,
// store.ErrLimitReached, store.ErrTopicTriggersFull, or any other error by
// its text.
func race(n int, f func(i int) error) map[error]int {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count = make(map[error]int)
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := f(i)
			switch {
			case err == nil:
			case errors.Is(err, store.ErrLimitReached):
				err = store.ErrLimitReached
			case errors.Is(err, store.ErrTopicTriggersFull):
				err = store.ErrTopicTriggersFull
			default:
				err = errors.New(err.Error())
			}
			mu.Lock()
			count[err]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return count
}
