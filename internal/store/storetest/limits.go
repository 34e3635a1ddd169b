package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testLimits(t *testing.T, setup setupFunc) {
	t.Run("DefaultsSetReplaceCascade", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls, ok := b.st.(store.LimitStore)
		require.True(t, ok, "%T does not implement store.LimitStore; every store must", b.st)
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
		ls := b.st.(store.LimitStore)
		app, other := newID(), newID()
		for _, id := range []string{app, other} {
			require.NoError(t, b.st.CreateApp(b.ctx, store.App{ID: id, Name: "a", CreatedAt: now()}, nil))
			for _, topic := range []string{"a", "b"} {
				_, _, err := b.st.CreateTopic(b.ctx, id, topic)
				require.NoError(t, err)
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
	t.Run("CreatesWithinLimitRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ls := b.st.(store.LimitStore)
		app := newID()
		require.NoError(t, b.st.CreateApp(b.ctx, store.App{ID: app, Name: "a", CreatedAt: now()}, nil))
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
			id := newID()
			return ls.CreateTriggerWithin(b.ctx, store.Trigger{
				ID: id, AppID: app, Topic: list[i%len(list)].Name,
				URL: "https://hooks.example.com/" + strings.ToLower(id), Secret: "whsec_" + newID(), CreatedAt: now(),
			}, limit)
		})
		require.Equal(t, limit, triggers[nil], "creates that succeeded: %v", triggers)
		require.Equal(t, tries-limit, triggers[store.ErrLimitReached], "creates refused: %v", triggers)
		n, err := ls.CountTriggers(b.ctx, app)
		require.NoError(t, err)
		require.Equal(t, limit, n)
		err = ls.CreateTriggerWithin(b.ctx, store.Trigger{ID: newID(), AppID: app, Topic: "nope", URL: "https://x", Secret: "s", CreatedAt: now()}, limit+1)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// race runs n calls of f at once and counts their outcomes: nil,
// store.ErrLimitReached, or any other error by its text.
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
