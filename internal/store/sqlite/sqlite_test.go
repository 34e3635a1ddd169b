package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// openStore opens a store on a new file in t's temporary directory and
// closes it when t ends.
func openStore(t *testing.T, opts sqlite.Options) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.db")
	st, err := sqlite.Open(t.Context(), path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st, path
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		// Small chunks, so that the suite's prune tests take several.
		st, _ := openStore(t, sqlite.Options{PruneChunk: 7})
		return st
	})
}

func TestConformanceDefaultOptions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		st, _ := openStore(t, sqlite.Options{})
		return st
	})
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "herald.db")

	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	app := store.App{ID: "app1", Name: "shop"}
	key := store.Key{ID: "key1", AppID: app.ID, SecretHash: []byte{1, 2, 3}, Scopes: []store.Scope{store.ScopePublish}}
	require.NoError(t, st.CreateApp(ctx, app, []store.Key{key}))
	_, _, err = st.CreateTopic(ctx, app.ID, "orders")
	require.NoError(t, err)
	var published []store.Message
	for _, body := range []string{`1`, `{"two":2}`} {
		msg, err := st.Publish(ctx, store.PublishRequest{AppID: app.ID, Topic: "orders", Body: []byte(body)})
		require.NoError(t, err)
		published = append(published, msg)
	}
	require.NoError(t, st.Close())

	st, err = sqlite.Open(ctx, path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	gotKey, err := st.GetKey(ctx, key.ID)
	require.NoError(t, err)
	require.Equal(t, key.SecretHash, gotKey.SecretHash)
	msgs, err := st.History(ctx, app.ID, "orders", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	for i := range published {
		require.Equal(t, published[i].ID, msgs[i].ID)
		require.Equal(t, published[i].Body, msgs[i].Body)
		require.True(t, published[i].PublishedAt.Equal(msgs[i].PublishedAt))
	}
	// Ids go on where they stopped.
	msg, err := st.Publish(ctx, store.PublishRequest{AppID: app.ID, Topic: "orders", Body: []byte(`3`)})
	require.NoError(t, err)
	require.Equal(t, uint64(3), msg.ID)
}

func TestOpenOddPath(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	require.NoError(t, os.Mkdir(dir, 0o700))
	path := filepath.Join(dir, "herald.db")
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	require.NoError(t, err)
	require.NoError(t, st.CreateApp(t.Context(), store.App{ID: "a", Name: "a"}, nil))
	require.NoError(t, st.Close())
	_, err = os.Stat(path)
	require.NoError(t, err)
}

func TestOpenRejectsNegativeOptions(t *testing.T) {
	t.Parallel()
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), sqlite.Options{MaxBatch: -1})
	require.Error(t, err)
}
