package loadtest

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublishLedger(t *testing.T) {
	t.Parallel()
	l := &publishLedger{topics: 3}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := uint64(g); n < 400; n += 4 {
				switch {
				case n < 30:
					l.Set(n, jobAccepted) // warmup
				case n%50 == 0:
					l.Set(n, jobFailed)
				default:
					l.Set(n, jobAcceptedMeasured)
				}
			}
		})
	}
	wg.Wait()
	sets := l.Measured()
	require.Len(t, sets, 3)
	var total uint64
	for _, s := range sets {
		total += s.Len()
	}
	require.EqualValues(t, 400-30-7, total) // 50, 100, … 350 failed
	// Job 31 is topic 1, seq 11; job 30 (seq 11 of topic 0) is measured,
	// job 29 (seq 10 of topic 2) is warmup, job 50 failed.
	require.True(t, sets[1].Has(11))
	require.True(t, sets[0].Has(11))
	require.False(t, sets[2].Has(10))
	ti, seq := jobTopicSeq(50, 3)
	require.False(t, sets[ti].Has(seq))
}
