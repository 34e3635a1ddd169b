package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// TestTwoDispatchersOnOneDatabase runs two dispatchers, each on a store of
// its own over one Postgres database (two nodes), through 1000 deliveries,
// and kills one of them mid-way: every delivery arrives at least once, and
// the only duplicates are deliveries the killed one had in flight.
func TestTwoDispatchersOnOneDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	nodeA, nodeB := openPostgresAt(t, db), openPostgresAt(t, db)
	b := &testBundle{st: nodeA, app: "app", topic: "orders", outcomes: make(chan settled, 10000)}
	require.NoError(t, b.st.CreateApp(t.Context(), store.App{ID: b.app, Name: "test", CreatedAt: time.Now().UTC()}, nil))
	_, _, err := b.st.CreateTopic(t.Context(), b.app, b.topic)
	require.NoError(t, err)

	const jobs, concurrency = 1000, 8
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		total atomic.Int32
		half  = make(chan struct{})
	)
	rcv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
		if total.Add(1) == jobs/3 {
			close(half)
		}
		// A receiver that takes a little while, so that the killed
		// dispatcher has attempts in flight.
		select {
		case <-time.After(2 * time.Millisecond):
		case <-r.Context().Done():
		}
	})
	b.trigger(t, rcv.URL)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < jobs; i += 8 {
				_, err := nodeA.Publish(t.Context(), store.PublishRequest{AppID: b.app, Topic: b.topic, Body: fmt.Appendf(nil, "%d", i)})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())

	opts := func(q webhook.Queue) webhook.DispatcherOptions {
		return webhook.DispatcherOptions{
			Queue: q, Guard: webhook.NewGuard(loopback()), Concurrency: concurrency,
			Timeout: time.Second, Lease: 2 * time.Second, PollInterval: 10 * time.Millisecond,
		}
	}
	a, err := webhook.NewDispatcher(opts(nodeA))
	require.NoError(t, err)
	a.Start(t.Context())
	b.dispatcher(t, opts(nodeB))

	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("a third of the deliveries did not arrive")
	}
	killed, kill := context.WithCancel(t.Context())
	kill()
	require.NoError(t, a.Close(killed))
	killedAt := time.Now()

	require.Eventually(t, func() bool {
		st := b.stats(t)
		return st.Delivered == jobs
	}, 60*time.Second, 20*time.Millisecond, "every delivery settled as delivered")
	st := b.stats(t)
	require.Equal(t, [3]int64{0, jobs, 0}, [3]int64{st.Pending, st.Delivered, st.Dead})

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, jobs, "every delivery arrived")
	dups := 0
	for _, n := range seen {
		require.LessOrEqual(t, n, 2)
		if n == 2 {
			dups++
		}
	}
	require.LessOrEqual(t, dups, concurrency, "duplicates only of what the killed dispatcher had in flight")
	t.Logf("%d duplicates of %d deliveries after killing one of two dispatchers %s ago", dups, jobs, time.Since(killedAt).Round(time.Millisecond))
}
