package groupcommit_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run starts a writer whose commit numbers the calls in the order it sees
// them and records each batch's size; stop closes the queue and waits.
func run(t *testing.T, opts groupcommit.Options, commit func([]*groupcommit.Call)) (q *groupcommit.Queue, stop func()) {
	t.Helper()
	closing := make(chan struct{})
	q = groupcommit.New(closing, opts)
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(commit) })
	var once sync.Once
	stop = func() { once.Do(func() { close(closing); wg.Wait() }) }
	t.Cleanup(stop)
	return q, stop
}

// TestEveryCallAnsweredInBatches: concurrent submits are all answered, with
// the answer their batch gave them, and some batches hold several calls.
func TestEveryCallAnsweredInBatches(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		next    uint64
		batches []int
	)
	q, _ := run(t, groupcommit.Options{MaxBatch: 64}, func(live []*groupcommit.Call) {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, len(live))
		for _, c := range live {
			next++
			c.Msg = store.Message{ID: next, Body: c.Req.Body}
			c.Answer()
		}
	})
	const callers, each = 16, 200
	var wg sync.WaitGroup
	seen := make([][]uint64, callers)
	for i := range callers {
		wg.Go(func() {
			for range each {
				m, err := q.Submit(t.Context(), store.PublishRequest{Body: []byte(`1`)})
				if !assert.NoError(t, err) {
					return
				}
				seen[i] = append(seen[i], m.ID)
			}
		})
	}
	wg.Wait()
	all := map[uint64]bool{}
	for _, ids := range seen {
		require.Len(t, ids, each)
		for _, id := range ids {
			require.False(t, all[id], "id %d answered twice", id)
			all[id] = true
		}
	}
	require.Len(t, all, callers*each)
	mu.Lock()
	defer mu.Unlock()
	biggest := 0
	for _, n := range batches {
		require.LessOrEqual(t, n, 64)
		biggest = max(biggest, n)
	}
	require.Greater(t, biggest, 1, "16 concurrent callers never shared a commit")
}

// TestBatchBytesBound: a batch stops growing once its bodies reach
// MaxBatchBytes.
func TestBatchBytesBound(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		sizes []int
	)
	q, _ := run(t, groupcommit.Options{MaxBatch: 100, MaxBatchBytes: 1000}, func(live []*groupcommit.Call) {
		mu.Lock()
		n := 0
		for _, c := range live {
			n += len(c.Req.Body)
			c.Answer()
		}
		sizes = append(sizes, n)
		mu.Unlock()
	})
	body := make([]byte, 400)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				_, err := q.Submit(t.Context(), store.PublishRequest{Body: body})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, n := range sizes {
		require.LessOrEqual(t, n, 1200, "a batch went past the byte bound by more than one body")
	}
}

// TestGivenUpCallsNotCommitted: a caller whose context has ended gets its
// error and its request never reaches commit; after close, calls get
// store.ErrClosed.
func TestGivenUpCallsNotCommitted(t *testing.T) {
	t.Parallel()
	committed := make(chan string, 10)
	q, stop := run(t, groupcommit.Options{MaxBatch: 8}, func(live []*groupcommit.Call) {
		for _, c := range live {
			committed <- string(c.Req.Body)
			c.Answer()
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := q.Submit(ctx, store.PublishRequest{Body: []byte(`"gave up"`)})
	require.ErrorIs(t, err, context.Canceled)
	_, err = q.Submit(t.Context(), store.PublishRequest{Body: []byte(`"kept"`)})
	require.NoError(t, err)
	require.Equal(t, `"kept"`, <-committed)
	require.Empty(t, committed)

	stop()
	_, err = q.Submit(t.Context(), store.PublishRequest{Body: []byte(`"late"`)})
	require.ErrorIs(t, err, store.ErrClosed)
}

// TestBatchPublishTravelsWhole: a batch publish reaches commit in one batch,
// its calls next to each other in request order, beyond MaxBatch; its
// caller gets every answer in order; Fail on one call fails all of it with
// an ItemError naming the first failing call.
func TestBatchPublishTravelsWhole(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		next uint64
		bad  []string
	)
	q, stop := run(t, groupcommit.Options{MaxBatch: 4}, func(live []*groupcommit.Call) {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < len(live); {
			unit := live[i].Unit()
			for j, c := range unit {
				if live[i+j] != c {
					bad = append(bad, "a unit's calls are not next to each other in order")
				}
			}
			for _, c := range unit {
				if string(c.Req.Body) == `"bad"` {
					c.Fail(store.ErrNotFound)
				}
			}
			for _, c := range unit {
				if c.Err == nil {
					next++
					c.Msg = store.Message{ID: next, Body: c.Req.Body}
				}
			}
			i += len(unit)
		}
		for _, c := range live {
			c.Answer()
		}
	})
	reqs := make([]store.PublishRequest, 10)
	for i := range reqs {
		reqs[i].Body = fmt.Appendf(nil, "%d", i)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				msgs, err := q.SubmitBatch(t.Context(), reqs)
				if !assert.NoError(t, err) {
					return
				}
				for i, m := range msgs {
					assert.Equal(t, string(reqs[i].Body), string(m.Body))
					if i > 0 {
						assert.Equal(t, msgs[i-1].ID+1, m.ID, "ids of one unit are consecutive")
					}
				}
				_, err = q.Submit(t.Context(), store.PublishRequest{Body: []byte(`1`)})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	failing := slices.Clone(reqs)
	failing[3].Body = []byte(`"bad"`)
	failing[7].Body = []byte(`"bad"`)
	_, err := q.SubmitBatch(t.Context(), failing)
	var ie *store.ItemError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, 3, ie.Index)
	require.ErrorIs(t, err, store.ErrNotFound)

	msgs, err := q.SubmitBatch(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, msgs)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = q.SubmitBatch(ctx, reqs)
	require.ErrorIs(t, err, context.Canceled)
	stop()
	_, err = q.SubmitBatch(t.Context(), reqs)
	require.ErrorIs(t, err, store.ErrClosed)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, bad)
}

// BenchmarkSubmit measures the hand-off alone: 8 publishers per core
// submitting to a writer whose commit only answers, as a store's writer
// would after its transaction. ns/op is the cost of one publish's trip to
// the writer and back.
//
//	go test -run '^$' -bench Submit -benchmem ./internal/store/groupcommit
func BenchmarkSubmit(b *testing.B) {
	closing := make(chan struct{})
	q := groupcommit.New(closing, groupcommit.Options{MaxBatch: 256})
	var wg sync.WaitGroup
	wg.Go(func() {
		q.Run(func(live []*groupcommit.Call) {
			for _, c := range live {
				c.Answer()
			}
		})
	})
	defer func() { close(closing); wg.Wait() }()
	req := store.PublishRequest{Body: []byte(`{"n":1}`)}
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Submit(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
