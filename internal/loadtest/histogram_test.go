package loadtest

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistBucket(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 1<<20 + 7, 1e9, 1e12, 1 << 62, 1<<63 - 1, 1<<64 - 1} {
		i := histBucket(v)
		require.Less(t, i, histBuckets, "v=%d", v)
		require.GreaterOrEqual(t, i, prev, "buckets grow with the value")
		prev = i
		lo, hi := histBucketRange(i)
		require.LessOrEqual(t, lo, v, "v=%d", v)
		require.GreaterOrEqual(t, hi, v, "v=%d", v)
		require.LessOrEqual(t, hi-lo, v/64, "a bucket is at most 1/64 of its value wide (v=%d)", v)
	}
	// Buckets tile the number line: each starts right after the one before.
	for i := 1; i < 2000; i++ {
		_, prevHi := histBucketRange(i - 1)
		lo, _ := histBucketRange(i)
		require.Equal(t, prevHi+1, lo, "bucket %d", i)
	}
}

func TestLatencyHistogram(t *testing.T) {
	t.Parallel()

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		require.Zero(t, h.Count())
		require.Zero(t, h.Quantile(.99))
		require.Zero(t, h.Mean())
		require.Zero(t, h.Max())
	})

	t.Run("Uniform", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		// 1µs … 100ms in 1µs steps, shuffled.
		vals := make([]time.Duration, 100_000)
		for i := range vals {
			vals[i] = time.Duration(i+1) * time.Microsecond
		}
		rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		for _, v := range vals {
			h.Record(v)
		}
		require.EqualValues(t, 100_000, h.Count())
		require.Equal(t, 100*time.Millisecond, h.Max())
		require.InDelta(t, float64(50_000_500*time.Nanosecond), float64(h.Mean()), 1)
		for _, q := range []float64{.5, .9, .99, .999, 1} {
			want := q * float64(100*time.Millisecond)
			require.InEpsilon(t, want, float64(h.Quantile(q)), 0.01, "q=%v", q)
		}
	})

	t.Run("ClampsNegativeAndCapsAtMax", func(t *testing.T) {
		t.Parallel()
		var h latencyHistogram
		h.Record(-time.Second)
		require.Zero(t, h.Quantile(1))
		h.Record(1000003) // mid-bucket is above the sample; Max caps it
		require.Equal(t, time.Duration(1000003), h.Quantile(1))
	})

	t.Run("ConcurrentAndMerge", func(t *testing.T) {
		t.Parallel()
		var a, b latencyHistogram
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					a.Record(time.Duration(g*1000+i) * time.Microsecond)
				}
			})
		}
		wg.Wait()
		b.Record(time.Hour)
		b.Merge(&a)
		require.EqualValues(t, 8001, b.Count())
		require.Equal(t, time.Hour, b.Max())
		require.InEpsilon(t, float64(4*time.Millisecond), float64(b.Quantile(.5)), 0.01)
	})
}
