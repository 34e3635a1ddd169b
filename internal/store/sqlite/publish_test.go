package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// BenchmarkPublish measures accepted publishes from 8 concurrent publishers
// to one topic, each committed before Publish returns, as 8 HTTP publishers
// would. publishes/s is b.N over the elapsed time.
func BenchmarkPublish(b *testing.B) {
	const publishers = 8
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, st.Close()) })
	require.NoError(b, st.CreateApp(ctx, store.App{ID: "app", Name: "bench"}, nil))
	_, _, err = st.CreateTopic(ctx, "app", "bench")
	require.NoError(b, err)
	// 128 bytes of compact JSON.
	body := []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}`)
	require.Len(b, body, 128)

	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism((publishers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "bench", Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
}

// BenchmarkPublishTriggers is BenchmarkPublish to a topic with 0, 1 and 10
// enabled triggers: each publish also enqueues a delivery per trigger in its
// transaction.
func BenchmarkPublishTriggers(b *testing.B) {
	for _, triggers := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("triggers=%d", triggers), func(b *testing.B) {
			const publishers = 8
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, st.Close()) })
			require.NoError(b, st.CreateApp(ctx, store.App{ID: "app", Name: "bench"}, nil))
			_, _, err = st.CreateTopic(ctx, "app", "bench")
			require.NoError(b, err)
			for i := range triggers {
				require.NoError(b, st.CreateTrigger(ctx, store.Trigger{
					ID: fmt.Sprint("tr", i), AppID: "app", Topic: "bench", URL: "https://hooks.example.com", Secret: "whsec_x",
				}))
			}
			body := []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}`)

			b.SetParallelism((publishers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "bench", Body: body}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
		})
	}
}
