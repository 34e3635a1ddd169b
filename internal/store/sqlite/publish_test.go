package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// BenchmarkPublish measures accepted publishes from 8 concurrent publishers
// to one topic, each committed before Publish returns, as 8 HTTP publishers
// would. publishes/s is b.N over the elapsed time.
func BenchmarkPublish(b *testing.B) {
	storetest.BenchPublish(b, openBench(b), 1, 0)
}

// BenchmarkPublishTriggers is BenchmarkPublish to a topic with 0, 1 and 10
// enabled triggers: each publish also enqueues a delivery per trigger in its
// transaction.
func BenchmarkPublishTriggers(b *testing.B) {
	for _, triggers := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("triggers=%d", triggers), func(b *testing.B) {
			storetest.BenchPublish(b, openBench(b), 1, triggers)
		})
	}
}

func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, st.Close()) })
	return st
}
