package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testApps(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("ListEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		apps, err := b.st.ListApps(b.ctx)
		require.NoError(t, err)
		require.Empty(t, apps)
	})

	t.Run("CreateListGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		base := now()
		oldest := store.App{ID: newID(), Name: "oldest", CreatedAt: base}
		middle := store.App{ID: newID(), Name: "middle", CreatedAt: base.Add(time.Millisecond)}
		newest := store.App{ID: newID(), Name: "newest ünïcode", CreatedAt: base.Add(2 * time.Millisecond)}
		// Created out of order: ListApps orders by CreatedAt, not by insertion.
		for _, app := range []store.App{middle, newest, oldest} {
			require.NoError(t, b.st.CreateApp(b.ctx, app, nil))
		}

		apps, err := b.st.ListApps(b.ctx)
		require.NoError(t, err)
		require.Len(t, apps, 3)
		for i, want := range []store.App{oldest, middle, newest} {
			requireApp(t, want, apps[i])
		}

		got, err := b.st.GetApp(b.ctx, middle.ID)
		require.NoError(t, err)
		requireApp(t, middle, got)
	})

	t.Run("SameNameTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Names are labels, not identities: two apps may share one.
		first := store.App{ID: newID(), Name: "shop", CreatedAt: now()}
		second := store.App{ID: newID(), Name: "shop", CreatedAt: first.CreatedAt.Add(time.Millisecond)}
		require.NoError(t, b.st.CreateApp(b.ctx, first, nil))
		require.NoError(t, b.st.CreateApp(b.ctx, second, nil))
		apps, err := b.st.ListApps(b.ctx)
		require.NoError(t, err)
		require.Len(t, apps, 2)
	})

	t.Run("DuplicateIDIsConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := createApp(t, b)
		err := b.st.CreateApp(b.ctx, store.App{ID: app.ID, Name: "again", CreatedAt: now()}, nil)
		require.ErrorIs(t, err, store.ErrConflict)

		got, err := b.st.GetApp(b.ctx, app.ID)
		require.NoError(t, err)
		requireApp(t, app, got)
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createApp(t, b)
		_, err := b.st.GetApp(b.ctx, "no-such-app")
		requireNotFound(t, err)
	})

	t.Run("DeleteUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNotFound(t, b.st.DeleteApp(b.ctx, "no-such-app"))
	})

	t.Run("DeleteCascadesKeysTopicsHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		doomed := store.App{ID: newID(), Name: "doomed", CreatedAt: now()}
		doomedKey := store.Key{ID: newID(), AppID: doomed.ID, SecretHash: []byte("h1"), Scopes: []store.Scope{store.ScopePublish}, CreatedAt: doomed.CreatedAt}
		require.NoError(t, b.st.CreateApp(b.ctx, doomed, []store.Key{doomedKey}))
		kept := store.App{ID: newID(), Name: "kept", CreatedAt: doomed.CreatedAt.Add(time.Millisecond)}
		keptKey := store.Key{ID: newID(), AppID: kept.ID, SecretHash: []byte("h2"), Scopes: []store.Scope{store.ScopePublish}, CreatedAt: kept.CreatedAt}
		require.NoError(t, b.st.CreateApp(b.ctx, kept, []store.Key{keptKey}))
		for _, app := range []store.App{doomed, kept} {
			createTopic(t, b, app.ID, "orders")
			createTopic(t, b, app.ID, "news")
			publish(t, b, app.ID, "orders", `{"n":1}`)
			publish(t, b, app.ID, "orders", `{"n":2}`)
		}

		require.NoError(t, b.st.DeleteApp(b.ctx, doomed.ID))

		_, err := b.st.GetApp(b.ctx, doomed.ID)
		requireNotFound(t, err)
		_, err = b.st.GetKey(b.ctx, doomedKey.ID)
		requireNotFound(t, err)
		_, err = b.st.GetTopic(b.ctx, doomed.ID, "orders")
		requireNotFound(t, err)
		_, err = b.st.ListTopics(b.ctx, doomed.ID)
		requireNotFound(t, err)
		_, err = b.st.History(b.ctx, doomed.ID, "orders", 0, 10)
		requireNotFound(t, err)
		_, err = b.st.Publish(b.ctx, store.PublishRequest{AppID: doomed.ID, Topic: "orders", Body: []byte(`1`)})
		requireNotFound(t, err)
		requireNotFound(t, b.st.DeleteApp(b.ctx, doomed.ID))

		// The other app is untouched.
		apps, err := b.st.ListApps(b.ctx)
		require.NoError(t, err)
		require.Len(t, apps, 1)
		requireApp(t, kept, apps[0])
		_, err = b.st.GetKey(b.ctx, keptKey.ID)
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2}, IDs(history(t, b, kept.ID, "orders")))
		topics, err := b.st.ListTopics(b.ctx, kept.ID)
		require.NoError(t, err)
		require.Len(t, topics, 2)

		// The id can be used again, and the new app starts empty.
		require.NoError(t, b.st.CreateApp(b.ctx, doomed, nil))
		topics, err = b.st.ListTopics(b.ctx, doomed.ID)
		require.NoError(t, err)
		require.Empty(t, topics)
	})
}

func testKeys(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("GetRoundTrips", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := store.App{ID: newID(), Name: "keys", CreatedAt: now()}
		full := store.Key{
			ID:         newID(),
			AppID:      app.ID,
			SecretHash: []byte{0x00, 0x01, 0xfe, 0xff, 'h', 0x00},
			// Order is kept as given.
			Scopes:    []store.Scope{store.ScopeSubscribe, store.ScopePublish, store.ScopeManage},
			CreatedAt: app.CreatedAt,
		}
		sub := store.Key{
			ID:         newID(),
			AppID:      app.ID,
			SecretHash: []byte("another hash"),
			Scopes:     []store.Scope{store.ScopeSubscribe},
			CreatedAt:  app.CreatedAt.Add(time.Second),
		}
		require.NoError(t, b.st.CreateApp(b.ctx, app, []store.Key{full, sub}))

		for _, want := range []store.Key{full, sub} {
			got, err := b.st.GetKey(b.ctx, want.ID)
			require.NoError(t, err)
			require.Equal(t, want.ID, got.ID)
			require.Equal(t, app.ID, got.AppID)
			require.Equal(t, want.SecretHash, got.SecretHash)
			require.Equal(t, want.Scopes, got.Scopes)
			requireSameTime(t, want.CreatedAt, got.CreatedAt)
		}
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.st.GetKey(b.ctx, "no-such-key")
		requireNotFound(t, err)
	})

	t.Run("DuplicateIDIsConflictAndCreatesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := store.App{ID: newID(), Name: "first", CreatedAt: now()}
		key := store.Key{ID: newID(), AppID: first.ID, SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopeManage}, CreatedAt: first.CreatedAt}
		require.NoError(t, b.st.CreateApp(b.ctx, first, []store.Key{key}))

		second := store.App{ID: newID(), Name: "second", CreatedAt: now()}
		fresh := store.Key{ID: newID(), AppID: second.ID, SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopePublish}, CreatedAt: second.CreatedAt}
		stolen := key
		stolen.AppID = second.ID
		err := b.st.CreateApp(b.ctx, second, []store.Key{fresh, stolen})
		require.ErrorIs(t, err, store.ErrConflict)

		// One transaction: neither the app nor its other key exists.
		_, err = b.st.GetApp(b.ctx, second.ID)
		requireNotFound(t, err)
		_, err = b.st.GetKey(b.ctx, fresh.ID)
		requireNotFound(t, err)
		got, err := b.st.GetKey(b.ctx, key.ID)
		require.NoError(t, err)
		require.Equal(t, first.ID, got.AppID)
	})

	t.Run("DuplicateIDInOneCallIsConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		app := store.App{ID: newID(), Name: "twice", CreatedAt: now()}
		key := store.Key{ID: newID(), AppID: app.ID, SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopeManage}, CreatedAt: app.CreatedAt}
		err := b.st.CreateApp(b.ctx, app, []store.Key{key, key})
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = b.st.GetApp(b.ctx, app.ID)
		requireNotFound(t, err)
	})
}
