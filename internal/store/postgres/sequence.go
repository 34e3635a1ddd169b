package postgres

import "sync"

// sequencer orders what the writers do after their commits. A writer takes
// a ticket once its transaction holds its topic locks; a batch that
// publishes to a topic another writer's batch holds waits for that batch's
// commit before its own lock, so it takes a later ticket. Running the
// CommittedFuncs in ticket order therefore runs them in id order per
// topic, whichever writer commits first.
//
// Every ticket taken must be finished, whether its transaction committed
// or not, or the tickets after it wait for ever. Nothing waits for its turn
// while it holds locks in the database, so the writers never wait for each
// other in a circle.
type sequencer struct {
	// mu guards every field; cond signals a change of turn.
	mu   sync.Mutex
	cond sync.Cond
	next uint64
	turn uint64
	// finished holds the tickets finished before their turn came.
	finished map[uint64]bool
}

func newSequencer() *sequencer {
	q := &sequencer{finished: make(map[uint64]bool)}
	q.cond.L = &q.mu
	return q
}

// take returns the next ticket.
func (q *sequencer) take() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.next
	q.next++
	return t
}

// await returns once every ticket before t is finished.
func (q *sequencer) await(t uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.turn != t {
		q.cond.Wait()
	}
}

// finish ends ticket t: at once if it is t's turn (after await), or when
// its turn comes, for a transaction that did not commit.
func (q *sequencer) finish(t uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.finished[t] = true
	for q.finished[q.turn] {
		delete(q.finished, q.turn)
		q.turn++
	}
	q.cond.Broadcast()
}
