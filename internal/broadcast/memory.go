package broadcast

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBufferSize is how many events a subscriber may fall behind before it
// loses the oldest ones, when MemoryOptions.BufferSize is 0.
const DefaultBufferSize = 512

// MemoryOptions configures a Memory broadcaster.
type MemoryOptions struct {
	// BufferSize is how many of a topic's newest events are held for its
	// subscribers: a subscriber that falls further behind loses the oldest
	// ones. 0 means DefaultBufferSize; it must not be negative.
	BufferSize int
}

// Memory is the in-process Broadcaster. Each (app, topic) with live
// subscribers has one ring of its newest events, shared by all of them, and
// each subscriber keeps only a cursor into it: publishing is one slot write
// plus a wake call per subscriber, and a subscriber that falls more
// than the ring's size behind skips to the oldest event still held and is
// told how many it missed, as with Tokio's broadcast channel.
//
// Rings are created on the first Subscribe and removed when the last
// subscriber leaves, so topics without subscribers cost nothing.
type Memory struct {
	bufferSize int

	// Lock order: mu, then a ring's mu.
	mu     sync.RWMutex       // guards topics and peak
	topics map[topicKey]*ring // (app, topic) → ring, only while it has subscribers
	peak   int                // the most entries topics has held since it was made
}

var _ Service = (*Memory)(nil)

type topicKey struct{ app, topic string }

// ring is one topic's window of recent events. It starts small and grows to
// its limit as events arrive, so an idle topic does not hold the full buffer.
type ring struct {
	limit int

	mu      sync.RWMutex
	buf     []*Event        // guarded by mu; event seq s lives at buf[s % limit] once full, buf[s] before
	head    uint64          // guarded by mu; seq of the next event to write
	subs    []*Subscription // guarded by mu; each knows its index in subs
	dropped bool            // guarded by mu; DropTopic was called
}

// NewMemory returns an in-process broadcaster.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	if opts.BufferSize < 0 {
		return nil, fmt.Errorf("broadcast: negative buffer size %d", opts.BufferSize)
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = DefaultBufferSize
	}
	return &Memory{bufferSize: opts.BufferSize, topics: make(map[topicKey]*ring)}, nil
}

// Subscribe implements Broadcaster. It never fails.
func (m *Memory) Subscribe(ctx context.Context, app, topic string, wake func()) (*Subscription, error) {
	if wake == nil {
		return nil, fmt.Errorf("broadcast: nil wake")
	}
	k := topicKey{app, topic}
	s := &Subscription{wake: wake}

	m.mu.Lock()
	r := m.topics[k]
	if r == nil {
		r = &ring{limit: m.bufferSize}
		m.topics[k] = r
		m.peak = max(m.peak, len(m.topics))
	}
	r.mu.Lock()
	s.ring = r
	s.next = r.head
	s.index = len(r.subs)
	r.subs = append(r.subs, s)
	// The subscription's lifetime is ctx: no goroutine waits for it. The
	// callback is registered under the locks so that DropTopic finds stop;
	// AfterFunc always runs it in a goroutine of its own, never here.
	s.stop = context.AfterFunc(ctx, func() {
		s.cancelled.Store(true)
		m.leave(k, r, s)
		s.notify()
	})
	r.mu.Unlock()
	m.mu.Unlock()
	return s, nil
}

// Ready implements Service: one process has no one else to hear.
func (m *Memory) Ready() error { return nil }

// Collectors implements Service; Memory has no metrics of its own (the SSE
// handler counts deliveries and lags).
func (m *Memory) Collectors() []prometheus.Collector { return nil }

// Close implements Service; Memory has no goroutines.
func (m *Memory) Close() error { return nil }

// leave removes s from r, and r from the registry once it is empty.
func (m *Memory) leave(k topicKey, r *ring, s *Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.index < 0 {
		return // already removed by DropTopic
	}
	last := len(r.subs) - 1
	r.subs[s.index] = r.subs[last]
	r.subs[s.index].index = s.index
	r.subs[last] = nil
	r.subs = r.subs[:last]
	s.index = -1
	if len(r.subs) == 0 && m.topics[k] == r {
		m.deleteLocked(k)
	}
}

// deleteLocked removes k from the registry. Go maps never shrink, so once the
// registry holds a quarter of its peak it is copied into a map sized to fit:
// a burst of topics leaves no memory behind. m.mu must be held.
func (m *Memory) deleteLocked(k topicKey) {
	delete(m.topics, k)
	if m.peak > 64 && len(m.topics) < m.peak/4 {
		fresh := make(map[topicKey]*ring, len(m.topics))
		for k, r := range m.topics {
			fresh[k] = r
		}
		m.topics = fresh
		m.peak = len(fresh)
	}
}

// Publish implements Broadcaster.
func (m *Memory) Publish(_ context.Context, ev *Event) {
	m.mu.RLock()
	r := m.topics[topicKey{ev.App, ev.Topic}]
	if r == nil {
		m.mu.RUnlock()
		return
	}
	r.mu.Lock()
	if len(r.buf) < r.limit {
		r.buf = append(r.buf, ev)
	} else {
		r.buf[r.head%uint64(r.limit)] = ev
	}
	r.head++
	r.mu.Unlock()
	m.mu.RUnlock()

	// Wake under the read lock only: subscribers may read meanwhile.
	r.mu.RLock()
	for _, s := range r.subs {
		s.notify()
	}
	r.mu.RUnlock()
}

// DropTopic implements Broadcaster.
func (m *Memory) DropTopic(_ context.Context, app, topic string) {
	k := topicKey{app, topic}
	m.mu.Lock()
	r := m.topics[k]
	if r == nil {
		m.mu.Unlock()
		return
	}
	m.deleteLocked(k)
	r.mu.Lock()
	r.dropped = true
	subs := r.subs
	r.subs = nil
	for _, s := range subs {
		s.index = -1
	}
	r.mu.Unlock()
	m.mu.Unlock()
	for _, s := range subs {
		// Unregister from the context, which may live on (a stream on other
		// topics): its callback would pin s, the ring and its events.
		s.stop()
		s.notify()
	}
}

// Subscription is one subscriber's view of a topic: a cursor into the
// topic's ring. Receive must be called from one goroutine at a time.
type Subscription struct {
	ring *ring  // nil for a Noop subscription
	wake func() // nil for a Noop subscription made with no wake

	next      uint64      // owned by the receiving goroutine; seq of the next event to receive
	index     int         // guarded by ring.mu; position in ring.subs, -1 once removed
	stop      func() bool // set under ring.mu by Memory.Subscribe; unregisters from the context
	cancelled atomic.Bool // the subscription's context ended
}

func (s *Subscription) notify() {
	if s.wake != nil {
		s.wake()
	}
}

// Receive appends to dst every event available now, without blocking, and
// returns the extended slice together with the number of events the
// subscriber lost since its previous Receive by falling more than the buffer
// behind. Once the subscription has ended and everything before the end has
// been received, err is ErrTopicDropped (the topic was dropped) or ErrClosed
// (its context ended); a subscription ended by its context stops at once,
// without draining.
func (s *Subscription) Receive(dst []*Event) (evs []*Event, missed uint64, err error) {
	if s.cancelled.Load() {
		return dst, 0, ErrClosed
	}
	r := s.ring
	if r == nil {
		return dst, 0, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	oldest := r.head - uint64(len(r.buf))
	if s.next < oldest {
		missed = oldest - s.next
		s.next = oldest
	}
	for ; s.next < r.head; s.next++ {
		if len(r.buf) < r.limit {
			dst = append(dst, r.buf[s.next])
		} else {
			dst = append(dst, r.buf[s.next%uint64(r.limit)])
		}
	}
	if r.dropped {
		err = ErrTopicDropped
	}
	return dst, missed, err
}
