package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testClose(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("MethodsReturnErrClosed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := store.App{ID: newID(), Name: "closing", CreatedAt: now()}
		key := store.Key{ID: newID(), AppID: app.ID, SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopeManage}, CreatedAt: app.CreatedAt}
		require.NoError(t, b.st.CreateApp(b.ctx, app, []store.Key{key}))
		createTopic(t, b, app.ID, "t")
		publish(t, b, app.ID, "t", `1`)

		require.NoError(t, b.st.Close())

		other := store.App{ID: newID(), Name: "late", CreatedAt: now()}
		calls := map[string]func() error{
			"CreateApp": func() error { return b.st.CreateApp(b.ctx, other, nil) },
			"ListApps":  func() error { _, err := b.st.ListApps(b.ctx); return err },
			"GetApp":    func() error { _, err := b.st.GetApp(b.ctx, app.ID); return err },
			"DeleteApp": func() error { return b.st.DeleteApp(b.ctx, app.ID) },
			"GetKey":    func() error { _, err := b.st.GetKey(b.ctx, key.ID); return err },
			"CreateTopic": func() error {
				_, _, err := b.st.CreateTopic(b.ctx, app.ID, "u")
				return err
			},
			"GetTopic":    func() error { _, err := b.st.GetTopic(b.ctx, app.ID, "t"); return err },
			"ListTopics":  func() error { _, err := b.st.ListTopics(b.ctx, app.ID); return err },
			"DeleteTopic": func() error { return b.st.DeleteTopic(b.ctx, app.ID, "t") },
			"Publish": func() error {
				_, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "t", Body: []byte(`2`)})
				return err
			},
			"History": func() error { _, err := b.st.History(b.ctx, app.ID, "t", 0, 10); return err },
			"Prune": func() error {
				_, err := b.st.Prune(b.ctx, store.Retention{Keep: 0, MaxAge: 0}, time.Now().Add(time.Hour))
				return err
			},
		}
		for name, call := range calls {
			require.ErrorIs(t, call(), store.ErrClosed, name)
		}

		require.NoError(t, b.st.Close(), "second Close")
	})

	t.Run("CloseDuringPublishes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		createTopic(t, b, app.ID, "t")
		const publishers, limit = 8, 100_000

		started := make(chan struct{})
		var once sync.Once
		errs := make([]error, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range limit {
					_, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: app.ID, Topic: "t", Body: []byte(`{}`)})
					if err != nil {
						errs[p] = err
						return
					}
					if i == 10 {
						once.Do(func() { close(started) })
					}
				}
				errs[p] = fmt.Errorf("publisher %d: %d publishes and the store never closed", p, limit)
			})
		}
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-started:
		case <-finished: // every publisher failed early: the check below says why
		}
		require.NoError(t, b.st.Close())
		<-finished
		for p, err := range errs {
			require.True(t, errors.Is(err, store.ErrClosed), "publisher %d: want ErrClosed, got %v", p, err)
		}
	})
}
