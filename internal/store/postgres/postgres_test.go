package postgres_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// testConns is the pool size of a test's store: tests run in parallel
// against one server with max_connections = 100.
const testConns = 4

// openStore opens a store on dbURL and closes it when t ends.
func openStore(t *testing.T, dbURL string, opts postgres.Options) *postgres.Store {
	t.Helper()
	if opts.MaxConns == 0 {
		opts.MaxConns = testConns
	}
	st, err := postgres.Open(t.Context(), dbURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		// Small chunks, so that the suite's prune tests take several.
		return openStore(t, pgtest.NewDatabase(t), postgres.Options{PruneChunk: 7})
	})
}

func TestConformanceDefaultOptions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		return openStore(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: testConns})
	})
}
