package pgtest_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
)

func TestNewDatabaseIsEmptyAndOwn(t *testing.T) {
	t.Parallel()
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	require.NotEqual(t, a, b)
	pgtest.Exec(t, a, "CREATE TABLE only_in_a (x int)")

	c, err := pgx.Connect(t.Context(), b)
	require.NoError(t, err)
	defer c.Close(context.Background())
	var n int
	require.NoError(t, c.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n))
	require.Zero(t, n, "a table made in one test database is visible in another")
}

// TestDatabaseDroppedAtCleanup checks that a test's database is gone once
// the test has ended. It is not parallel: the owner subtest must run (and
// clean up) before the check, so it is not parallel either, and tparallel
// wants the two alike.
func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("owner", func(t *testing.T) {
		u, err := url.Parse(pgtest.NewDatabase(t))
		require.NoError(t, err)
		name = strings.TrimPrefix(u.Path, "/")
	})
	require.NotEmpty(t, name)

	c, err := pgx.Connect(t.Context(), pgtest.ServerURL())
	require.NoError(t, err)
	defer c.Close(context.Background())
	var n int
	require.NoError(t, c.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	require.Zero(t, n, "database %s outlived its test", name)
}
