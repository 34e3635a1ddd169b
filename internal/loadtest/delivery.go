package loadtest

import (
	"math/bits"
)

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

// deliveryTotals is what a set of subscribers received, summed.
type deliveryTotals struct {
	Subscribers               int
	Expected, Delivered, Lost uint64
	Duplicates, OutOfOrder    uint64
	LaggedEvents, Missed      uint64
	Malformed, Disconnected   uint64
	FirstDisconnect           string
}

// add sums o into t; Lost is kept as Expected − Delivered.
func (t *deliveryTotals) add(o deliveryTotals) {
	t.Subscribers += o.Subscribers
	t.Expected += o.Expected
	t.Delivered += o.Delivered
	t.Lost = t.Expected - t.Delivered
	t.Duplicates += o.Duplicates
	t.OutOfOrder += o.OutOfOrder
	t.LaggedEvents += o.LaggedEvents
	t.Missed += o.Missed
	t.Malformed += o.Malformed
	t.Disconnected += o.Disconnected
	if t.FirstDisconnect == "" {
		t.FirstDisconnect = o.FirstDisconnect
	}
}

// counts is the report's share of t.
func (t deliveryTotals) counts() DeliveryCounts {
	return DeliveryCounts{
		Expected: t.Expected, Delivered: t.Delivered, Lost: t.Lost,
		Duplicates: t.Duplicates, OutOfOrder: t.OutOfOrder, LaggedEvents: t.LaggedEvents,
	}
}
