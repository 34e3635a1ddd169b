package auth_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/store"
)

// keyMap is a KeyGetter over a map that counts its reads.
type keyMap struct {
	keys  map[string]store.Key
	reads atomic.Int64
}

func (m *keyMap) GetKey(_ context.Context, id string) (store.Key, error) {
	m.reads.Add(1)
	k, ok := m.keys[id]
	if !ok {
		return store.Key{}, store.ErrNotFound
	}
	return k, nil
}

func newKeys(t *testing.T) (*keyMap, string) {
	t.Helper()
	k, full := auth.NewKey("app1", []store.Scope{store.ScopePublish})
	require.True(t, strings.HasPrefix(full, "hk_"+k.ID+"_"))
	require.NotContains(t, string(k.SecretHash), full, "only a hash is stored")
	return &keyMap{keys: map[string]store.Key{k.ID: k}}, full
}

func TestVerify(t *testing.T) {
	t.Parallel()
	keys, full := newKeys(t)
	k, err := auth.Verify(t.Context(), keys, full)
	require.NoError(t, err)
	require.Equal(t, "app1", k.AppID)
	require.True(t, auth.HasScope(k, store.ScopePublish))
	require.False(t, auth.HasScope(k, store.ScopeManage))

	id := strings.Split(full, "_")[1]
	for _, bad := range []string{
		"", "hk_", "hk_" + id, "hk_" + id + "_", full + "x", full[:len(full)-1],
		"hk_unknown_" + strings.Repeat("a", 64), strings.TrimPrefix(full, "hk_"), "Bearer " + full,
	} {
		_, err := auth.Verify(t.Context(), keys, bad)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "%q", bad)
	}
}

func TestVerifierCachesOnlySuccess(t *testing.T) {
	t.Parallel()
	keys, full := newKeys(t)
	v := auth.NewVerifier(keys, 0)
	for range 5 {
		_, err := v.Verify(t.Context(), full)
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), keys.reads.Load(), "a verified key is read once")
	for range 3 {
		_, err := v.Verify(t.Context(), full+"x")
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	require.Equal(t, int64(4), keys.reads.Load(), "failures are never cached")

	v.Forget("app1")
	_, err := v.Verify(t.Context(), full)
	require.NoError(t, err)
	require.Equal(t, int64(5), keys.reads.Load(), "Forget drops the app's keys")
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok, created, err := auth.LoadOrCreateAdminToken(dir)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := auth.LoadOrCreateAdminToken(dir)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, tok, again)

	a := auth.NewAdminToken(tok)
	require.True(t, a.Verify(tok))
	require.False(t, a.Verify(tok+"x"))
	require.False(t, a.Verify(""))
	require.False(t, auth.NewAdminToken("").Verify(""), "an empty token never verifies")
}
