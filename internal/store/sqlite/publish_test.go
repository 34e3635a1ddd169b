package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
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

// benchBody is a message of 128 bytes, as storetest's benchmarks publish.
var benchBody = []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}`)

func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, st.Close()) })
	return st
}

// openBenchTopic opens a store for a benchmark with the topic "orders" of
// the app "app".
func openBenchTopic(b *testing.B) *sqlite.Store {
	b.Helper()
	st := openBench(b)
	require.NoError(b, st.CreateApp(b.Context(), store.App{ID: "app", Name: "bench"}, nil))
	_, _, err := st.CreateTopic(b.Context(), "app", "orders")
	require.NoError(b, err)
	return st
}

// BenchmarkPublishSerial measures publishes from one publisher, so that
// every publish is a batch and a commit of its own: ns/op is what a commit
// costs the writer, BEGIN to COMMIT.
func BenchmarkPublishSerial(b *testing.B) {
	st := openBenchTopic(b)
	ctx := b.Context()
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if _, err := st.Publish(ctx, store.PublishRequest{AppID: "app", Topic: "orders", Body: benchBody}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkPublishBatch measures batch publishes of 100 messages from one
// publisher: a commit each, whose cost is mostly the messages' inserts.
// cpu-µs/op is per message.
func BenchmarkPublishBatch(b *testing.B) {
	st := openBenchTopic(b)
	ctx := b.Context()
	reqs := make([]store.PublishRequest, 100)
	for i := range reqs {
		reqs[i] = store.PublishRequest{AppID: "app", Topic: "orders", Body: benchBody}
	}
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		if _, err := st.PublishBatch(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N*len(reqs)), "cpu-µs/op")
}
