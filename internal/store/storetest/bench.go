package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// BenchPublishers is how many goroutines BenchPublish publishes from.
const BenchPublishers = 8

// benchBody is 128 bytes of compact JSON, the message every store
// benchmark publishes.
var benchBody = []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}`)

// BenchPublish measures st's Publish from BenchPublishers goroutines, each
// on one of topics topics (round-robin), every topic with triggers enabled
// triggers (st must then be a store.Outbox), and reports publishes/s. Every
// store's benchmarks run this one body, so their figures compare.
func BenchPublish(b *testing.B, st store.Store, topics, triggers int) {
	b.Helper()
	benchSetup(b, st, topics, triggers)
	benchRun(b, topics, func(topic string) func() error {
		req := store.PublishRequest{AppID: "app", Topic: topic, Body: benchBody}
		return func() error {
			_, err := st.Publish(context.Background(), req)
			return err
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
}

// BenchPublishBatch is BenchPublish with PublishBatch: each of b.N
// operations is one batch publish of size messages to one topic, and it
// reports messages/s.
func BenchPublishBatch(b *testing.B, st store.Store, topics, size int) {
	b.Helper()
	benchSetup(b, st, topics, 0)
	benchRun(b, topics, func(topic string) func() error {
		reqs := make([]store.PublishRequest, size)
		for i := range reqs {
			reqs[i] = store.PublishRequest{AppID: "app", Topic: topic, Body: benchBody}
		}
		return func() error {
			_, err := st.PublishBatch(context.Background(), reqs)
			return err
		}
	})
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "messages/s")
}

// benchRun runs b.N operations from BenchPublishers goroutines, each on
// one of topics topics (round-robin); newOp gives a goroutine its
// operation on its topic.
func benchRun(b *testing.B, topics int, newOp func(topic string) func() error) {
	b.Helper()
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism((BenchPublishers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op := newOp(fmt.Sprintf("bench-%d", next.Add(1)%int64(topics)))
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchSetup creates the app and the topics of a benchmark, each with
// triggers enabled triggers.
func benchSetup(b *testing.B, st store.Store, topics, triggers int) {
	b.Helper()
	ctx := context.Background()
	require.Len(b, benchBody, 128)
	require.NoError(b, st.CreateApp(ctx, store.App{ID: "app", Name: "bench"}, nil))
	for i := range topics {
		topic := fmt.Sprintf("bench-%d", i)
		_, _, err := st.CreateTopic(ctx, "app", topic)
		require.NoError(b, err)
		for j := range triggers {
			ob, ok := st.(store.Outbox)
			require.True(b, ok, "%T is not a store.Outbox", st)
			require.NoError(b, ob.CreateTrigger(ctx, store.Trigger{
				ID: fmt.Sprintf("tr-%d-%d", i, j), AppID: "app", Topic: topic,
				URL: "https://hooks.example.com", Secret: "whsec_x",
			}))
		}
	}
}
