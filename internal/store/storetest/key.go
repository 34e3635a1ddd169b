package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// keysOf returns the store's key lifecycle, which every store implements.
func keysOf(t *testing.T, st store.Store) store.Keys {
	t.Helper()
	ks, ok := st.(store.Keys)
	require.True(t, ok, "store %T does not implement store.Keys", st)
	return ks
}

func testKeyLifecycle(t *testing.T, setup setupFunc) {
	t.Helper()

	newApp := func(t *testing.T, b *testBundle) (store.App, store.Key) {
		t.Helper()
		app := store.App{ID: newID(), Name: "keys", CreatedAt: now()}
		first := store.Key{ID: newID(), AppID: app.ID, SecretHash: []byte("h1"),
			Scopes: []store.Scope{store.ScopeManage, store.ScopePublish}, CreatedAt: app.CreatedAt}
		require.NoError(t, b.st.CreateApp(b.ctx, app, []store.Key{first}))
		return app, first
	}

	t.Run("CreateListRevoke", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ks := keysOf(t, b.st)
		app, first := newApp(t, b)
		second := store.Key{ID: newID(), AppID: app.ID, SecretHash: []byte{0, 0xff, 'x'},
			Scopes: []store.Scope{store.ScopeSubscribe}, CreatedAt: first.CreatedAt.Add(time.Second)}
		require.NoError(t, ks.CreateKey(b.ctx, second))

		got, err := b.st.GetKey(b.ctx, second.ID)
		require.NoError(t, err)
		require.Equal(t, second.SecretHash, got.SecretHash)
		require.Equal(t, second.Scopes, got.Scopes)

		list, err := ks.ListKeys(b.ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, first.ID, list[0].ID, "oldest first")
		require.Equal(t, second.ID, list[1].ID)
		require.Equal(t, first.Scopes, list[0].Scopes)
		requireSameTime(t, second.CreatedAt, list[1].CreatedAt)
		require.True(t, list[1].LastUsedAt.IsZero(), "never used")

		before := time.Now().Add(-time.Minute)
		rev, err := ks.RevokeKey(b.ctx, app.ID, first.ID)
		require.NoError(t, err)
		require.Equal(t, first.ID, rev.KeyID)
		require.Equal(t, app.ID, rev.AppID)
		require.Equal(t, time.UTC, rev.RevokedAt.Location())

		_, err = b.st.GetKey(b.ctx, first.ID)
		requireNotFound(t, err)
		list, err = ks.ListKeys(b.ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, second.ID, list[0].ID)

		_, err = ks.RevokeKey(b.ctx, app.ID, first.ID)
		requireNotFound(t, err)

		revs, clock, err := ks.Revocations(b.ctx, before)
		require.NoError(t, err)
		require.Len(t, revs, 1)
		require.Equal(t, rev.KeyID, revs[0].KeyID)
		require.Equal(t, app.ID, revs[0].AppID)
		requireSameTime(t, rev.RevokedAt, revs[0].RevokedAt)
		require.False(t, clock.Before(rev.RevokedAt), "the clock read after the revocation")

		revs, _, err = ks.Revocations(b.ctx, rev.RevokedAt.Add(time.Microsecond))
		require.NoError(t, err)
		require.Empty(t, revs, "only revocations at or after since")

		// A revoked id is never issued again.
		again := first
		again.CreatedAt = time.Time{}
		err = ks.CreateKey(b.ctx, again)
		require.ErrorIs(t, err, store.ErrConflict)
	})

	t.Run("EmptyAppAndUnknowns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ks := keysOf(t, b.st)
		app := store.App{ID: newID(), Name: "bare", CreatedAt: now()}
		require.NoError(t, b.st.CreateApp(b.ctx, app, nil))
		list, err := ks.ListKeys(b.ctx, app.ID)
		require.NoError(t, err)
		require.Empty(t, list)

		_, err = ks.ListKeys(b.ctx, "no-such-app")
		requireNotFound(t, err)
		err = ks.CreateKey(b.ctx, store.Key{ID: newID(), AppID: "no-such-app", SecretHash: []byte("h"), Scopes: []store.Scope{store.ScopePublish}})
		requireNotFound(t, err)
		_, err = ks.RevokeKey(b.ctx, app.ID, "no-such-key")
		requireNotFound(t, err)
		_, err = ks.RevokeKey(b.ctx, app.ID, "bad\x00id\xff")
		requireNotFound(t, err)
	})

	t.Run("AnotherAppsKeyIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ks := keysOf(t, b.st)
		_, mine := newApp(t, b)
		other, _ := newApp(t, b)
		_, err := ks.RevokeKey(b.ctx, other.ID, mine.ID)
		requireNotFound(t, err)
		_, err = b.st.GetKey(b.ctx, mine.ID)
		require.NoError(t, err, "the key stays valid")
	})

	t.Run("TouchKeepsTheLatest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ks := keysOf(t, b.st)
		app, first := newApp(t, b)
		at := now().Truncate(time.Minute)
		require.NoError(t, ks.TouchKeys(b.ctx, map[string]time.Time{first.ID: at, "no-such-key": at}))
		require.NoError(t, ks.TouchKeys(b.ctx, map[string]time.Time{first.ID: at.Add(-time.Hour)}))
		require.NoError(t, ks.TouchKeys(b.ctx, nil))
		list, err := ks.ListKeys(b.ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		requireSameTime(t, at, list[0].LastUsedAt)
		require.NoError(t, ks.TouchKeys(b.ctx, map[string]time.Time{first.ID: at.Add(time.Minute)}))
		list, err = ks.ListKeys(b.ctx, app.ID)
		require.NoError(t, err)
		requireSameTime(t, at.Add(time.Minute), list[0].LastUsedAt)
	})

	t.Run("DeleteAppDeletesKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ks := keysOf(t, b.st)
		app, first := newApp(t, b)
		require.NoError(t, b.st.DeleteApp(b.ctx, app.ID))
		_, err := b.st.GetKey(b.ctx, first.ID)
		requireNotFound(t, err)
		_, err = ks.ListKeys(b.ctx, app.ID)
		requireNotFound(t, err)
	})
}
