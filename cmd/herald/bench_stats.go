package main

import (
	"math"
	"math/bits"
	"sync"
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

// seqSet is a growable bitset of message sequence numbers (which start at
// 1). One subscriber of a topic at 100 msg/s for 11 s needs 1,100 bits.
type seqSet struct {
	words []uint64
}

// Add puts seq in the set and reports whether it was new.
func (s *seqSet) Add(seq uint64) bool {
	w, bit := seq/64, uint64(1)<<(seq%64)
	if w >= uint64(len(s.words)) {
		grown := make([]uint64, max(w+1, uint64(2*len(s.words))))
		copy(grown, s.words)
		s.words = grown
	}
	if s.words[w]&bit != 0 {
		return false
	}
	s.words[w] |= bit
	return true
}

// Has reports whether seq is in the set.
func (s *seqSet) Has(seq uint64) bool {
	w := seq / 64
	return w < uint64(len(s.words)) && s.words[w]&(1<<(seq%64)) != 0
}

// Len is the number of members.
func (s *seqSet) Len() uint64 {
	var n int
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// IntersectLen is the number of members s and o have in common.
func (s *seqSet) IntersectLen(o *seqSet) uint64 {
	var n int
	for i := range min(len(s.words), len(o.words)) {
		n += bits.OnesCount64(s.words[i] & o.words[i])
	}
	return uint64(n)
}

// deliveryTracker is one subscriber's account of what it received. It is
// owned by that subscriber's goroutine and read only after it has ended.
type deliveryTracker struct {
	seen       seqSet // every seq received, warmup included
	lastID     uint64 // the last SSE id received
	messages   uint64 // message frames received, duplicates included
	duplicates uint64 // a seq received more than once
	outOfOrder uint64 // an SSE id not above the one before it
	lagged     uint64 // `event: lagged` frames
	missed     uint64 // the sum of their "missed" counts
	malformed  uint64 // frames whose data could not be read
}

// Observe records a message with the given seq and SSE id, and reports
// whether the seq is new to this subscriber.
//
// Order is judged by the server's ids, which are strictly increasing per
// topic, not by seq: with several publishers, messages commit in a different
// order from the one their seqs were handed out in, and that is not an error.
func (t *deliveryTracker) Observe(seq, id uint64) bool {
	t.messages++
	if id <= t.lastID && t.messages > 1 {
		t.outOfOrder++
	}
	t.lastID = max(t.lastID, id)
	if !t.seen.Add(seq) {
		t.duplicates++
		return false
	}
	return true
}

// publishLedger remembers the outcome of every publish, by job number
// (0, 1, 2, …: job n publishes seq n/T+1 to topic n%T of T topics). It is
// safe for concurrent use; publishers take the lock once per request, which
// is nothing beside the request itself.
type publishLedger struct {
	topics int

	mu     sync.Mutex
	states []uint8 // guarded by mu; index is the job number
}

// Publish outcomes kept in the ledger.
const (
	jobPending uint8 = iota
	jobAccepted
	jobAcceptedMeasured // accepted, and sent inside the measured window
	jobFailed
)

// jobTopicSeq maps job n to its topic index and seq among topics topics.
func jobTopicSeq(n uint64, topics int) (topic int, seq uint64) {
	return int(n % uint64(topics)), n/uint64(topics) + 1
}

// jobNumber is the inverse of jobTopicSeq: the job that publishes seq to
// topic index topic among topics topics.
func jobNumber(topic int, seq uint64, topics int) uint64 {
	return (seq-1)*uint64(topics) + uint64(topic)
}

// Set records job n's outcome.
func (l *publishLedger) Set(n uint64, state uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= uint64(len(l.states)) {
		l.states = append(l.states, make([]uint8, n+1-uint64(len(l.states)))...)
	}
	l.states[n] = state
}

// Measured returns, per topic, the seqs accepted inside the measured window.
func (l *publishLedger) Measured() []seqSet {
	l.mu.Lock()
	defer l.mu.Unlock()
	sets := make([]seqSet, l.topics)
	for n, st := range l.states {
		if st == jobAcceptedMeasured {
			t, seq := jobTopicSeq(uint64(n), l.topics)
			sets[t].Add(seq)
		}
	}
	return sets
}
