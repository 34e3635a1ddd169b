package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, like HdrHistogram: values below
// 2^histSubBits nanoseconds have a bucket each, and every power-of-two range
// above is split into histHalf equal buckets, so a bucket's width is at most
// 1/64 of its value and a quantile read from its midpoint is within 0.8% of
// the truth. The bucket count is fixed (about 30 KiB per histogram), however
// many samples go in: 10,000 subscribers × 100 msg/s × 10 s is 10 million
// samples, which an array of them would need 80 MB for.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits // 128
	histHalf     = histSubCount / 2 // 64
	histBuckets  = histSubCount + histHalf*(64-histSubBits)
)

// latencyHistogram counts durations in fixed log-scale buckets. Record is
// safe for concurrent use (every counter is atomic); the readers (Count,
// Quantile, Max, Mean) are meant for after the writers are done, though
// reading meanwhile is race-free and merely approximate.
type latencyHistogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; 10M samples of 10 s each still fit
	max    atomic.Uint64
}

// histBucket returns the bucket of v nanoseconds.
func histBucket(v uint64) int {
	if v < histSubCount {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // ≥ 1; v>>shift is in [64, 128)
	return shift*histHalf + int(v>>shift)
}

// histBucketRange returns the smallest and largest value of bucket i.
func histBucketRange(i int) (lo, hi uint64) {
	if i < histSubCount {
		return uint64(i), uint64(i)
	}
	shift := i/histHalf - 1
	m := uint64(i - shift*histHalf)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one duration; negative ones (a remote server's clock ahead of
// ours) count as zero.
func (h *latencyHistogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histBucket(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Merge adds every sample of o to h.
func (h *latencyHistogram) Merge(o *latencyHistogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for v := o.max.Load(); ; {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is the number of samples.
func (h *latencyHistogram) Count() uint64 { return h.n.Load() }

// Max is the largest sample, exactly.
func (h *latencyHistogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the average sample, exactly; 0 without samples.
func (h *latencyHistogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (0 < q ≤ 1) by the nearest-rank method:
// the midpoint of the bucket holding the ⌈q·n⌉-th smallest sample, never more
// than Max. It is 0 without samples.
func (h *latencyHistogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := histBucketRange(i)
			return time.Duration(min(lo+(hi-lo)/2, h.max.Load()))
		}
	}
	return h.Max()
}
