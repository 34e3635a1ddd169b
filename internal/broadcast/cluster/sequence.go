package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/store"
)

// topicState is the sequencer of one topic with local subscribers: it hands
// events to local subscribers strictly in id order, once each.
type topicState struct {
	key  topicKey
	subs int // guarded by Broadcaster.mu: local subscriptions holding it

	mu sync.Mutex
	// primed: last has been read from the store. Before that, events are
	// only held.
	primed bool // guarded by mu
	// dropped: the topic was deleted; nothing more is delivered.
	dropped bool // guarded by mu
	// last is the id of the newest event handed to local subscribers.
	last uint64 // guarded by mu
	// held are events beyond last+1, sorted by id, waiting for the gap
	// before them to be read from history.
	held []*broadcast.Event // guarded by mu
	// want is the newest id known to exist (from a pointer notification).
	want uint64 // guarded by mu
	// resync: read history until it runs dry (after a listener reconnect).
	resync bool // guarded by mu
	// filling: a fill goroutine runs for this topic.
	filling bool // guarded by mu
	// born is the topic's CreatedAt when it was primed: which life of the
	// name this state follows, so that a late notification of an earlier
	// life's deletion does not end subscriptions of a recreated topic.
	born time.Time // guarded by mu
	// primedc is closed once primed is set.
	primedc chan struct{}

	// watchOnce has the transport watch the topic for the state's first
	// subscriber; every later one waits for it. unwatch and watchErr are
	// set inside it.
	watchOnce sync.Once
	unwatch   func()
	watchErr  error
}

// hold returns the topic's state, creating it, and counts one more holder.
func (b *Broadcaster) hold(app, topic string) *topicState {
	k := topicKey{app, topic}
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.topics[k]
	if ts == nil {
		ts = &topicState{key: k, primedc: make(chan struct{})}
		b.topics[k] = ts
	}
	ts.subs++
	return ts
}

// release counts one holder out and forgets the topic after its last one.
// The last holder also ends the transport's watch, whether or not the
// state is still the topic's (a drop removes it from the map first).
func (b *Broadcaster) release(ts *topicState) {
	b.mu.Lock()
	ts.subs--
	last := ts.subs <= 0
	gone := last && b.topics[ts.key] == ts
	if gone {
		delete(b.topics, ts.key)
	}
	b.mu.Unlock()
	if gone {
		// A fill still running for it must stop: a new subscriber gets a
		// new state, and two sequencers must never feed one topic.
		ts.mu.Lock()
		ts.dropped = true
		ts.held = nil
		ts.mu.Unlock()
	}
	// Every holder went through watch, so watchOnce has run.
	if last && ts.unwatch != nil {
		ts.unwatch()
	}
}

// watch has the transport watch the topic, once per state, before the
// state is primed: a notice sent after the topic's last id is read is then
// heard, and held or delivered in order.
func (b *Broadcaster) watch(ctx context.Context, ts *topicState) error {
	ts.watchOnce.Do(func() {
		ts.unwatch, ts.watchErr = b.tr.Watch(ctx, ts.key.app, ts.key.topic)
	})
	if ts.watchErr != nil {
		return fmt.Errorf("%w: subscribe %s/%s: %w", broadcast.ErrUnavailable, ts.key.app, ts.key.topic, ts.watchErr)
	}
	return nil
}

func (b *Broadcaster) lookup(app, topic string) *topicState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[topicKey{app, topic}]
}

// prime reads where the topic stands, if no subscriber has yet. The state
// exists (and holds arriving events) before the read, so an event committed
// after the read is never missed: it is either held or delivered in order.
func (b *Broadcaster) prime(ctx context.Context, ts *topicState) error {
	ts.mu.Lock()
	primed := ts.primed
	ts.mu.Unlock()
	if primed {
		return nil
	}
	tp, err := b.cfg.History.GetTopic(ctx, ts.key.app, ts.key.topic)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("subscribe %s/%s: %w", ts.key.app, ts.key.topic, err)
	}
	if err != nil {
		return fmt.Errorf("%w: subscribe %s/%s: %w", broadcast.ErrUnavailable, ts.key.app, ts.key.topic, err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.primed {
		ts.primed = true
		ts.last = tp.LastID
		ts.born = tp.CreatedAt
		close(ts.primedc)
		b.advanceLocked(ts)
	}
	return nil
}

// offer takes one event, from this node's commit or another node's
// notification, and delivers it in order.
func (b *Broadcaster) offer(ts *topicState, ev *broadcast.Event) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.dropped || (ts.primed && ev.ID <= ts.last) {
		return // a duplicate, or too late
	}
	if ts.primed && ev.ID == ts.last+1 && len(ts.held) == 0 {
		b.deliverLocked(ts, ev) // the common case: next in line
		return
	}
	i, found := slices.BinarySearchFunc(ts.held, ev.ID, func(e *broadcast.Event, id uint64) int {
		return cmpID(e.ID, id)
	})
	if !found {
		ts.held = slices.Insert(ts.held, i, ev)
	}
	// Bound what a topic can hold while its gap cannot be read (the store
	// is down): the oldest would be lost to a slow subscriber anyway.
	if limit := 4 * max(b.cfg.BufferSize, broadcast.DefaultBufferSize); len(ts.held) > limit {
		ts.held = slices.Delete(ts.held, 0, len(ts.held)-limit)
	}
	b.advanceLocked(ts)
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// want records that messages up to id exist (a pointer notification).
func (b *Broadcaster) want(ts *topicState, id uint64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.want = max(ts.want, id)
	b.advanceLocked(ts)
}

func (b *Broadcaster) deliverLocked(ts *topicState, ev *broadcast.Event) {
	b.mem.Publish(b.ctx, ev)
	ts.last = ev.ID
}

// advanceLocked delivers held events that are next in line and starts a
// history read if a gap, a pointer or a catch-up is left. ts.mu is held.
func (b *Broadcaster) advanceLocked(ts *topicState) {
	if !ts.primed || ts.dropped {
		return
	}
	n := 0
	for ; n < len(ts.held) && ts.held[n].ID <= ts.last+1; n++ {
		if ts.held[n].ID == ts.last+1 {
			b.deliverLocked(ts, ts.held[n])
		}
	}
	ts.held = slices.Delete(ts.held, 0, n)
	if b.needsFillLocked(ts) && !ts.filling {
		// A gap alone is most often a notice still on its way (another
		// node committed the id just before this one, and its notice
		// travels after the commit): give it GapGrace before reading
		// history. A pointer or a catch-up is read at once.
		wait := time.Duration(0)
		if ts.want <= ts.last && !ts.resync {
			wait = b.cfg.GapGrace
		}
		ts.filling = b.goOwned(func() { b.fill(ts, wait) })
	}
}

func (b *Broadcaster) needsFillLocked(ts *topicState) bool {
	return ts.primed && !ts.dropped && (len(ts.held) > 0 || ts.want > ts.last || ts.resync)
}

// fill reads history after the topic's last delivered id until the gap, the
// pointer or the catch-up that started it is resolved. It retries while the
// store is unreachable, and ends at Close.
func (b *Broadcaster) fill(ts *topicState, wait time.Duration) {
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return
		}
	}
	for attempt := 0; ; {
		select {
		case b.fills <- struct{}{}:
		case <-b.ctx.Done():
			return
		}
		ts.mu.Lock()
		if !b.needsFillLocked(ts) {
			ts.filling = false
			ts.mu.Unlock()
			<-b.fills
			return
		}
		after, resync := ts.last, ts.resync
		ts.resync = false
		// What is known to exist before the read begins is committed, so
		// the read sees it unless history no longer holds it: a held event
		// committed after every id before it (ids are taken under the
		// topic's row lock), and a pointer arrives after its commit.
		// Anything learnt during the read may be newer than its snapshot.
		wantAt, heldMax := ts.want, uint64(0)
		if n := len(ts.held); n > 0 {
			heldMax = ts.held[n-1].ID
		}
		ts.mu.Unlock()

		b.historyReads.Inc()
		msgs, err := b.readAfter(ts, after, resync)
		<-b.fills
		if errors.Is(err, store.ErrNotFound) {
			// Deleted while this node was not listening: end its streams.
			b.dropState(ts)
			return
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.log.Warn("cluster: read history", "app", ts.key.app, "topic", ts.key.topic, "err", err)
			ts.mu.Lock()
			ts.resync = ts.resync || resync
			ts.mu.Unlock()
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(Backoff(attempt, b.cfg.MaxBackoff)):
			}
			attempt++
			continue
		}
		attempt = 0

		ts.mu.Lock()
		for _, m := range msgs {
			if !ts.dropped && m.ID > ts.last {
				b.deliverLocked(ts, &broadcast.Event{
					App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt,
				})
			}
		}
		if len(msgs) < b.cfg.FillBatch {
			// The read saw everything committed before it began, and
			// history holds nothing newer than last. So what was wanted or
			// held before the read, beyond a gap, is no longer in history:
			// deliver what is held, and the ids tell subscribers what they
			// lost. What arrived during the read waits for another read.
			if ts.want <= wantAt {
				ts.want = 0
			}
			n := 0
			for ; n < len(ts.held) && ts.held[n].ID <= heldMax; n++ {
				if !ts.dropped && ts.held[n].ID > ts.last {
					b.deliverLocked(ts, ts.held[n])
				}
			}
			ts.held = slices.Delete(ts.held, 0, n)
		} else {
			ts.resync = ts.resync || resync // more to read
		}
		b.advanceLocked(ts)
		ts.mu.Unlock()
	}
}

// readAfter reads the topic's history after an id. On a catch-up it first
// checks the topic is still the life this state follows: a deletion this
// node did not hear (and a re-creation of the name) shows only here, and
// gives store.ErrNotFound.
func (b *Broadcaster) readAfter(ts *topicState, after uint64, resync bool) ([]store.Message, error) {
	if resync {
		tp, err := b.cfg.History.GetTopic(b.ctx, ts.key.app, ts.key.topic)
		if err != nil {
			return nil, err
		}
		ts.mu.Lock()
		born := ts.born
		ts.mu.Unlock()
		if !tp.CreatedAt.Equal(born) {
			return nil, fmt.Errorf("topic %s/%s was deleted and created again: %w", ts.key.app, ts.key.topic, store.ErrNotFound)
		}
	}
	return b.cfg.History.History(b.ctx, ts.key.app, ts.key.topic, after, b.cfg.FillBatch)
}

// states returns the states of the topics with local subscribers now.
func (b *Broadcaster) states() []*topicState {
	b.mu.Lock()
	defer b.mu.Unlock()
	states := make([]*topicState, 0, len(b.topics))
	for _, ts := range b.topics {
		states = append(states, ts)
	}
	return states
}

// catchUp makes every subscribed topic read what it missed while the
// transport was not listening.
func (b *Broadcaster) catchUp() {
	for _, ts := range b.states() {
		ts.mu.Lock()
		ts.resync = true
		b.advanceLocked(ts)
		ts.mu.Unlock()
	}
}

// remoteDrop handles another node's deletion of a topic. The name may
// already have been created again, and this node's subscribers may follow
// the new life, so it asks the store which life is current before ending
// anything; it does so in its own goroutine, never in the listener's.
func (b *Broadcaster) remoteDrop(app, topic string) {
	ts := b.lookup(app, topic)
	if ts == nil {
		return
	}
	b.goOwned(func() {
		// This read comes after the deletion committed (its notice was sent
		// after): it names the life that is current now, if any.
		tp, err := b.cfg.History.GetTopic(b.ctx, app, topic)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			if b.ctx.Err() == nil {
				b.log.Warn("cluster: check a deleted topic; ending its streams", "app", app, "topic", topic, "err", err)
			}
		}
		// Which life the state follows is known once it is primed; a
		// state that never is was given up by its subscriber.
		select {
		case <-ts.primedc:
		case <-b.ctx.Done():
			return
		case <-time.After(30 * time.Second):
			return
		}
		ts.mu.Lock()
		current := err == nil && tp.CreatedAt.Equal(ts.born)
		ts.mu.Unlock()
		if !current {
			b.dropState(ts)
		}
	})
}

// dropState ends the subscriptions of ts, if it is still the topic's state.
func (b *Broadcaster) dropState(ts *topicState) {
	b.mu.Lock()
	if b.topics[ts.key] != ts {
		b.mu.Unlock()
		return
	}
	delete(b.topics, ts.key)
	b.mu.Unlock()
	ts.mu.Lock()
	ts.dropped = true
	ts.held = nil
	ts.mu.Unlock()
	b.mem.DropTopic(b.ctx, ts.key.app, ts.key.topic)
}

// dropLocal ends the topic's local subscriptions and forgets its state.
func (b *Broadcaster) dropLocal(app, topic string) {
	k := topicKey{app, topic}
	b.mu.Lock()
	ts := b.topics[k]
	delete(b.topics, k)
	b.mu.Unlock()
	if ts != nil {
		ts.mu.Lock()
		ts.dropped = true
		ts.held = nil
		ts.mu.Unlock()
	}
	b.mem.DropTopic(b.ctx, app, topic)
}

// checkLoop reads, every CheckInterval, each locally subscribed topic's
// last id and has the sequencer fill what it has not delivered: a notice
// lost on the way (or never sent, its node having died after the commit)
// is found within one interval of the commit. A topic found deleted, or in
// another life, ends its streams. With a HeadsReader it is one read per
// checkChunk topics, else one per topic.
func (b *Broadcaster) checkLoop() {
	t := time.NewTicker(b.cfg.CheckInterval)
	defer t.Stop()
	heads, batched := b.cfg.History.(HeadsReader)
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		var due []*topicState
		for _, ts := range b.states() {
			ts.mu.Lock()
			// A fill running now reads to the end anyway.
			if ts.primed && !ts.dropped && !ts.filling {
				due = append(due, ts)
			}
			ts.mu.Unlock()
		}
		for len(due) > 0 && b.ctx.Err() == nil {
			n := 1
			if batched {
				n = min(len(due), checkChunk)
			}
			b.check(heads, due[:n])
			due = due[n:]
		}
	}
}

// checkChunk is the most topics one batched check reads.
const checkChunk = 500

// check reads the heads of states' topics and compares each with what was
// delivered. heads is nil for a History without HeadsReader; states then
// holds one topic.
func (b *Broadcaster) check(heads HeadsReader, states []*topicState) {
	select {
	case b.fills <- struct{}{}:
	case <-b.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, max(b.cfg.CheckInterval, time.Second))
	found := make(map[topicKey]store.Topic, len(states))
	var err error
	if heads != nil {
		apps, names := make([]string, len(states)), make([]string, len(states))
		for i, ts := range states {
			apps[i], names[i] = ts.key.app, ts.key.topic
		}
		var tps []store.Topic
		tps, err = heads.TopicHeads(ctx, apps, names)
		for _, tp := range tps {
			found[topicKey{tp.AppID, tp.Name}] = tp
		}
	} else {
		var tp store.Topic
		tp, err = b.cfg.History.GetTopic(ctx, states[0].key.app, states[0].key.topic)
		if err == nil {
			found[states[0].key] = tp
		} else if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	}
	cancel()
	<-b.fills
	b.historyReads.Inc()
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Warn("cluster: check topics' last ids", "topics", len(states), "err", err)
		}
		return
	}
	for _, ts := range states {
		tp, ok := found[ts.key]
		ts.mu.Lock()
		born := ts.born
		ts.mu.Unlock()
		if !ok || !tp.CreatedAt.Equal(born) {
			b.dropState(ts) // deleted, or deleted and created again
			continue
		}
		b.want(ts, tp.LastID)
	}
}
