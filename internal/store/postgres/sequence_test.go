package postgres

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSequencerRunsTurnsInTicketOrder: whatever order the holders get to
// it, each runs its turn after every earlier ticket finished, and a ticket
// finished early (a transaction that did not commit) lets the next run.
func TestSequencerRunsTurnsInTicketOrder(t *testing.T) {
	t.Parallel()
	q := newSequencer()
	const n = 50
	tickets := make([]uint64, n)
	for i := range tickets {
		tickets[i] = q.take()
	}
	var (
		mu  sync.Mutex
		ran []uint64
		wg  sync.WaitGroup
	)
	// Start them last first, so that order comes from the tickets alone.
	for i := n - 1; i >= 0; i-- {
		wg.Go(func() {
			tk := tickets[i]
			if tk%7 == 3 {
				q.finish(tk) // rolled back: no turn of its own
				return
			}
			q.await(tk)
			mu.Lock()
			ran = append(ran, tk)
			mu.Unlock()
			q.finish(tk)
		})
	}
	wg.Wait()
	var want []uint64
	for _, tk := range tickets {
		if tk%7 != 3 {
			want = append(want, tk)
		}
	}
	require.Equal(t, want, ran)
	require.Empty(t, q.finished)
	q.await(q.take()) // every ticket finished: the next one's turn is now
}
