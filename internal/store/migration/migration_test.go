package migration_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store/migration"
)

func TestLoadOrdersAndChecks(t *testing.T) {
	t.Parallel()
	ms, err := migration.Load(fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
	}, "m")
	require.NoError(t, err)
	require.Equal(t, []migration.Migration{{1, "0001_a.sql", "A"}, {2, "0002_b.sql", "B"}}, ms)

	for name, fsys := range map[string]fstest.MapFS{
		"a gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"a bad name": {"m/first.sql": {}},
		"version 0":  {"m/0000_a.sql": {}},
	} {
		_, err := migration.Load(fsys, "m")
		require.Error(t, err, name)
	}
}
