package loadtest

import (
	"sync"
)

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
