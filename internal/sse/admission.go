package sse

import "sync"

// admission decides which streams may start and keeps track of the live
// ones: the WaitGroup that Close waits on, the subscriber count per topic
// that the topics API reports, and the streams of each key, which revoking
// the key ends.
type admission struct {
	mu      sync.Mutex
	closed  bool                            // guarded by mu; Close was called
	streams sync.WaitGroup                  // Add guarded by mu (so none follows Wait)
	counts  map[topicRef]int                // guarded by mu; live subscriptions per topic
	keys    map[string]map[*stream]struct{} // guarded by mu; streams by the key that opened them
}

type topicRef struct{ app, topic string }

// enter admits a stream unless the handler is closing. A stream that was
// admitted calls leave exactly once.
func (a *admission) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.streams.Add(1)
	return true
}

func (a *admission) leave() { a.streams.Done() }

// close refuses every later enter.
func (a *admission) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
}

// count adds delta to the live subscriber count of each topic. A stream is
// counted once it is subscribed and knows its positions, so a count that
// includes it means events published from then on reach it.
func (a *admission) count(app string, topics []string, delta int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = make(map[topicRef]int)
	}
	for _, t := range topics {
		k := topicRef{app, t}
		if a.counts[k] += delta; a.counts[k] <= 0 {
			delete(a.counts, k)
		}
	}
}

// subscribers returns the live subscriber count of (app, topic).
func (a *admission) subscribers(app, topic string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.counts[topicRef{app, topic}]
}
