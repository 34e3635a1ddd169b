package loadtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDueJobs(t *testing.T) {
	t.Parallel()
	require.Zero(t, dueJobs(0, 100))
	require.Zero(t, dueJobs(-time.Second, 100))
	require.EqualValues(t, 1, dueJobs(10*time.Millisecond, 100))
	require.EqualValues(t, 1000, dueJobs(10*time.Second, 100))
	require.EqualValues(t, 5, dueJobs(10*time.Second, 0.5))
}

// TestSchedulePublishes checks the paced schedule hands out job numbers in
// order, none twice, and never more than have come due.
func TestSchedulePublishes(t *testing.T) {
	t.Parallel()
	const rate = 1000
	start := time.Now().Add(-100 * time.Millisecond) // 100 due at once
	ctx, cancel := context.WithCancel(t.Context())
	jobs := make(chan uint64, 8)
	var wg sync.WaitGroup
	wg.Go(func() { schedulePublishes(ctx, start, rate, jobs) })
	var got []uint64
	for len(got) < 150 {
		got = append(got, <-jobs)
	}
	cancel()
	wg.Wait()
	due := dueJobs(time.Since(start), rate)
	close(jobs)
	for n := range jobs {
		got = append(got, n)
	}
	for i, n := range got {
		require.EqualValues(t, i, n, "job numbers in order from 0")
	}
	require.LessOrEqual(t, uint64(len(got)), due, "no job before it is due")
}

func TestTakeJobs(t *testing.T) {
	t.Parallel()
	var last uint64
	next := func() (uint64, bool) {
		if last == 5 {
			return 0, false
		}
		last++
		return last - 1, true
	}
	jobs := takeJobs(t.Context(), nil, 3, next)
	require.Equal(t, []uint64{0, 1, 2}, jobs)
	jobs = takeJobs(t.Context(), jobs[:0], 3, next)
	require.Equal(t, []uint64{3, 4}, jobs, "fewer once the jobs run out")
	require.Empty(t, takeJobs(t.Context(), jobs[:0], 3, next))

	last = 0
	stopped, cancel := context.WithCancel(t.Context())
	cancel()
	require.Empty(t, takeJobs(stopped, nil, 3, next), "none once the publishing time is over")
}

// TestPublishResultRecord checks how one request's outcome is counted:
// each message on its own by the window, the request and its latency by
// its first message.
func TestPublishResultRecord(t *testing.T) {
	t.Parallel()
	w := &measureWindow{}
	w.setSchedule(10, 20)
	res := &publishResult{ledger: &publishLedger{topics: 1}}
	sent := time.Now()

	res.record(w, []uint64{8, 9, 10, 11}, sent, time.Millisecond, nil)
	require.EqualValues(t, 2, res.accepted.Load(), "10 and 11 are in the window")
	require.Zero(t, res.requests.Load(), "the request began in the warmup")
	require.Zero(t, res.latency.Count())

	boom := errors.New("boom")
	res.record(w, []uint64{12, 13}, sent, time.Millisecond, boom)
	require.EqualValues(t, 2, res.failed.Load())
	require.Equal(t, boom, res.FirstError())
	res.record(w, []uint64{14}, sent, time.Millisecond, errors.New("later"))
	require.Equal(t, boom, res.FirstError(), "the first error is kept")

	res.record(w, []uint64{19, 20}, sent, 3*time.Millisecond, nil)
	require.EqualValues(t, 3, res.accepted.Load())
	require.EqualValues(t, 1, res.requests.Load())
	require.EqualValues(t, 1, res.latency.Count())
	require.Equal(t, 3*time.Millisecond, res.latency.Max())

	res.record(w, []uint64{30}, sent, time.Millisecond, errors.New("after the window"))
	require.EqualValues(t, 3, res.failed.Load(), "a failure after the window is not counted")

	measured := res.ledger.Measured()[0]
	for seq := uint64(1); seq <= 31; seq++ {
		want := seq == 11 || seq == 12 || seq == 20 // jobs 10, 11 and 19
		require.Equal(t, want, measured.Has(seq), "seq %d", seq)
	}
}
