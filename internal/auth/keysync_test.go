package auth_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// TestKeySyncHearsRevocationsOnce runs a KeySync over a real SQLite store:
// a key revoked through the store (as another node would) is dropped from
// the Verifier's cache and handed to RevokedFunc exactly once, although
// every poll reads it again within the margin; the key's use is written
// when Run ends.
func TestKeySyncHearsRevocationsOnce(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"), sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	k, full := auth.NewKey("app1", []store.Scope{store.ScopePublish})
	require.NoError(t, st.CreateApp(t.Context(), store.App{ID: "app1", Name: "a"}, []store.Key{k}))

	v := auth.NewVerifier(st, time.Hour) // only a revocation can end it
	_, err = v.Verify(t.Context(), full)
	require.NoError(t, err)
	require.NoError(t, v.KeyValid(t.Context(), k.ID))

	var (
		mu    sync.Mutex
		heard []store.Revocation
	)
	feed := &countingFeed{KeyFeed: st}
	ks, err := auth.NewKeySync(auth.KeySyncOptions{
		Feed: feed, Verifier: v, PollInterval: 5 * time.Millisecond,
		RevokedFunc: func(r store.Revocation) { mu.Lock(); heard = append(heard, r); mu.Unlock() },
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(t.Context())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- ks.Run(runCtx) }()

	_, err = st.RevokeKey(t.Context(), "app1", k.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := v.Verify(t.Context(), full)
		return err != nil
	}, 10*time.Second, 5*time.Millisecond, "the cached key is dropped")
	require.ErrorIs(t, v.KeyValid(t.Context(), k.ID), auth.ErrKeyRevoked)
	require.ErrorIs(t, v.KeyValid(t.Context(), k.ID), auth.ErrTokenInvalid)
	require.NoError(t, v.KeyValid(t.Context(), ""), "admin-minted tokens name no key")

	// Let several more polls read the same revocation.
	seen := feed.polls.Load()
	require.Eventually(t, func() bool { return feed.polls.Load() > seen+5 }, 10*time.Second, 5*time.Millisecond)
	stop()
	require.NoError(t, <-done)
	mu.Lock()
	require.Len(t, heard, 1, "each revocation is handed on once")
	require.Equal(t, k.ID, heard[0].KeyID)
	require.Equal(t, "app1", heard[0].AppID)
	mu.Unlock()
}

// countingFeed counts the polls of a real feed, so the test knows when
// several have happened.
type countingFeed struct {
	auth.KeyFeed
	polls atomic.Int64
}

func (f *countingFeed) Revocations(ctx context.Context, since time.Time) ([]store.Revocation, time.Time, error) {
	f.polls.Add(1)
	return f.KeyFeed.Revocations(ctx, since)
}

func TestVerifierNotesUseOncePerMinute(t *testing.T) {
	t.Parallel()
	keys, full := newKeys(t)
	v := auth.NewVerifier(keys, 0)
	require.Nil(t, v.TakeUsed())
	for range 3 {
		_, err := v.Verify(t.Context(), full)
		require.NoError(t, err)
	}
	used := v.TakeUsed()
	require.Len(t, used, 1)
	for _, at := range used {
		require.Equal(t, at.Truncate(time.Minute), at)
		require.WithinDuration(t, time.Now(), at, 2*time.Minute)
	}
	_, err := v.Verify(t.Context(), full)
	require.NoError(t, err)
	if now := time.Now().UTC().Truncate(time.Minute); now.Equal(anyValue(used)) {
		require.Nil(t, v.TakeUsed(), "the same minute is not handed out twice")
	}
}

func anyValue(m map[string]time.Time) time.Time {
	for _, v := range m {
		return v
	}
	return time.Time{}
}
