// Package broadcasttest is the conformance suite for broadcast.Broadcaster.
// Every implementation runs it from its own tests:
//
//	broadcasttest.Run(t, newBroadcaster, broadcasttest.Options{BufferSize: n})
//
// The suite asserts only the contract written in package broadcast. Delivery
// may be asynchronous (a cluster backend hears publishes back from its
// database), so no case expects an event to be receivable the moment Publish
// returns: a case waits on the subscription's wake channel, with a timeout,
// and calls Receive again. Waiting only on wake, never on a timer, is also how
// the suite checks that wake fires for events, lags and ends.
//
// Two properties are assumed beyond "eventually": events of one topic arrive
// in publish order (so once a later event has arrived, an earlier one that
// has not never will), and once one subscriber of a topic has received an
// event, every subscriber of the topic can receive it (the lag case counts on
// this to know what a subscriber that never reads has missed).
package broadcasttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
)

// DefaultTimeout bounds each wait for delivery when Options.Timeout is 0.
// It only bounds a hang (every wait ends on a wake, not on the clock), so it
// is generous: a cluster backend on a busy machine takes seconds to hear a
// publish back from its database.
const DefaultTimeout = 60 * time.Second

// DefaultPublishTimeout bounds each Publish call when Options.PublishTimeout
// is 0. It is what proves that Publish never waits for a subscriber: an
// in-memory Publish does no I/O and returns in microseconds, so 10 s is far
// beyond any scheduling delay, while one that waited for a subscriber that
// never reads would never return.
const DefaultPublishTimeout = 10 * time.Second

// Options describes the implementation under test.
type Options struct {
	// BufferSize is how many events the implementation lets a subscriber fall
	// behind before it loses the oldest ones: its configured buffer. It must
	// be positive.
	BufferSize int

	// Timeout bounds each wait for delivery, a wake or the end of a
	// subscription. 0 means DefaultTimeout.
	Timeout time.Duration

	// PublishTimeout bounds each Publish call: longer, and Publish counts as
	// blocked. 0 means DefaultPublishTimeout. An implementation whose Publish
	// does I/O (a harness that commits each event to a database first) sets
	// it to bound that work on a busy machine; waiting for a subscriber that
	// never reads still fails, as such a Publish never returns.
	PublishTimeout time.Duration
}

// Run runs the conformance suite as parallel subtests of t. newBroadcaster is
// called once per subtest, with the subtest's t, and returns a broadcaster
// configured with opts.BufferSize; it should register any cleanup on that t.
// Each subtest uses app names derived from its own name, so broadcasters that
// share a backend (one Postgres database) do not hear each other.
func Run(t *testing.T, newBroadcaster func(t *testing.T) broadcast.Broadcaster, opts Options) {
	t.Helper()
	require.Positive(t, opts.BufferSize, "broadcasttest: Options.BufferSize")
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := newBroadcaster(t)
		require.NotNil(t, b, "newBroadcaster returned nil")
		return &testBundle{b: b, app: appName(t), opts: opts}
	}

	for _, c := range []struct {
		name string
		test func(t *testing.T, tb *testBundle)
	}{
		{"PerTopicOrder", testPerTopicOrder},
		{"OnlyEventsAfterSubscribe", testOnlyEventsAfterSubscribe},
		{"ReceiveAppends", testReceiveAppends},
		{"PublishWithoutSubscribers", testPublishWithoutSubscribers},
		{"AppsAndTopicsIsolated", testAppsAndTopicsIsolated},
		{"SlowSubscriberLosesOldest", testSlowSubscriberLosesOldest},
		{"SlowSubscriberDoesNotStarveOthers", testSlowSubscriberDoesNotStarveOthers},
		{"DropTopic", testDropTopic},
		{"ContextCancel", testContextCancel},
		{"ContextEndedBeforeSubscribe", testContextEndedBeforeSubscribe},
		{"SharedWake", testSharedWake},
		{"Concurrent", testConcurrent},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, setup(t))
		})
	}
}

// testBundle is what each case works with.
type testBundle struct {
	b    broadcast.Broadcaster
	app  string // unique to the case; derive other app names from it
	opts Options
}

// subscriber is a subscription with its own wake channel and a record of
// everything Receive has returned.
type subscriber struct {
	sub    *broadcast.Subscription
	wake   chan struct{}
	cancel context.CancelFunc

	got    []*broadcast.Event // every event received, in order
	missed uint64             // sum of the missed counts
	err    error              // the last error Receive returned
}

// subscribe subscribes to (app, topic) with a context of its own, ended by
// the subscriber's cancel or at the end of the test.
func (tb *testBundle) subscribe(t *testing.T, app, topic string) *subscriber {
	t.Helper()
	return tb.subscribeWake(t, app, topic, make(chan struct{}, 1))
}

// subscribeWake is subscribe with a given, possibly shared, wake channel.
func (tb *testBundle) subscribeWake(t *testing.T, app, topic string, wake chan struct{}) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	sub, err := tb.b.Subscribe(ctx, app, topic, broadcast.WakeChan(wake))
	require.NoError(t, err, "Subscribe(%q, %q)", app, topic)
	require.NotNil(t, sub, "Subscribe(%q, %q)", app, topic)
	return &subscriber{sub: sub, wake: wake, cancel: cancel}
}

// publish publishes evs in order. It fails t if one Publish has not
// returned within Options.PublishTimeout: Publish must never block, whatever
// the subscribers do. The deadline is per call, not for all of evs: a
// broadcaster behind a database (pgnotify's harness commits each event)
// takes longer for many events on a busy machine without blocking on anyone.
func (tb *testBundle) publish(t *testing.T, evs ...*broadcast.Event) {
	t.Helper()
	returned := make(chan struct{}, len(evs))
	// On failure this goroutine is left blocked in Publish, and the leak check
	// of the implementation's package reports it too.
	go func() {
		for _, ev := range evs {
			tb.b.Publish(t.Context(), ev)
			returned <- struct{}{}
		}
	}()
	timer := time.NewTimer(tb.opts.PublishTimeout)
	defer timer.Stop()
	for i := range evs {
		select {
		case <-returned:
			timer.Reset(tb.opts.PublishTimeout)
		case <-timer.C:
			require.FailNow(t, "Publish blocked", "event %d of %d did not return within %v", i+1, len(evs), tb.opts.PublishTimeout)
		}
	}
}

// receive calls Receive once and records what it returned.
func (s *subscriber) receive(t *testing.T) (evs []*broadcast.Event, missed uint64, err error) {
	t.Helper()
	n := len(s.got)
	s.got, missed, err = s.sub.Receive(s.got)
	require.GreaterOrEqual(t, len(s.got), n, "Receive dropped part of dst")
	s.missed += missed
	s.err = err
	return s.got[n:], missed, err
}

// await calls Receive, then waits on wake and calls it again, until done
// holds. It fails t if the subscription ends first or if wake does not fire
// within the timeout.
func (s *subscriber) await(t *testing.T, tb *testBundle, what string, done func(*subscriber) bool) {
	t.Helper()
	timer := time.NewTimer(tb.opts.Timeout)
	defer timer.Stop()
	for {
		_, _, _ = s.receive(t) // results are kept on s
		if done(s) {
			return
		}
		require.NoError(t, s.err, "subscription ended while waiting for %s", what)
		select {
		case <-s.wake:
		case <-timer.C:
			require.FailNow(t, "no wake", "waiting for %s: after %v have %d events (last %s), missed %d",
				what, tb.opts.Timeout, len(s.got), lastOf(s.got), s.missed)
		}
	}
}

// awaitID receives until the subscriber has an event with an id of at least id.
func (s *subscriber) awaitID(t *testing.T, tb *testBundle, id uint64) {
	t.Helper()
	s.await(t, tb, "event #"+strconv.FormatUint(id, 10), func(s *subscriber) bool {
		return len(s.got) > 0 && s.got[len(s.got)-1].ID >= id
	})
}

// awaitEnd receives until Receive returns an error, and returns it.
func (s *subscriber) awaitEnd(t *testing.T, tb *testBundle) error {
	t.Helper()
	timer := time.NewTimer(tb.opts.Timeout)
	defer timer.Stop()
	for {
		if _, _, err := s.receive(t); err != nil {
			return err
		}
		select {
		case <-s.wake:
		case <-timer.C:
			require.FailNow(t, "no wake", "waiting for the subscription to end: after %v have %d events (last %s)",
				tb.opts.Timeout, len(s.got), lastOf(s.got))
		}
	}
}

// drainWake takes a pending wake, if any, so that requireWake waits for a
// new one.
func (s *subscriber) drainWake() {
	select {
	case <-s.wake:
	default:
	}
}

// requireWake waits for wake to fire, failing t after the timeout.
func (s *subscriber) requireWake(t *testing.T, tb *testBundle, what string) {
	t.Helper()
	select {
	case <-s.wake:
	case <-time.After(tb.opts.Timeout):
		require.FailNow(t, "no wake", "waiting %v for %s", tb.opts.Timeout, what)
	}
}

// requireIdle requires that Receive has nothing now: no event, no lag, no end.
func (s *subscriber) requireIdle(t *testing.T) {
	t.Helper()
	evs, missed, err := s.receive(t)
	require.Empty(t, describe(evs), "unexpected events")
	require.Zero(t, missed, "unexpected lag")
	require.NoError(t, err)
}

// requireGot requires that the subscriber received exactly want, in order,
// and lost nothing.
func (s *subscriber) requireGot(t *testing.T, want []*broadcast.Event) {
	t.Helper()
	require.Equal(t, describe(want), describe(s.got))
	require.Zero(t, s.missed, "missed")
}

// testPerTopicOrder publishes 1000 events to each of two topics, interleaved,
// and checks that each of several subscribers gets its topic's events in
// order and nothing else. Publishing pauses every BufferSize events until the
// subscribers have caught up, so none of them falls far enough behind to lose
// anything.
func testPerTopicOrder(t *testing.T, tb *testBundle) {
	const events, perTopic = 1000, 3
	topics := []string{"order-1", "order-2"}
	subs := make([][]*subscriber, len(topics))
	want := make([][]*broadcast.Event, len(topics))
	for i, topic := range topics {
		for range perTopic {
			subs[i] = append(subs[i], tb.subscribe(t, tb.app, topic))
		}
	}

	batch := min(tb.opts.BufferSize, events)
	for start := 1; start <= events; start += batch {
		var evs []*broadcast.Event
		for id := start; id < start+batch && id <= events; id++ {
			for i, topic := range topics {
				ev := event(tb.app, topic, uint64(id))
				evs = append(evs, ev)
				want[i] = append(want[i], ev)
			}
		}
		tb.publish(t, evs...)
		last := evs[len(evs)-1].ID
		for i := range topics {
			for _, s := range subs[i] {
				s.awaitID(t, tb, last)
			}
		}
	}
	for i := range topics {
		for _, s := range subs[i] {
			s.requireGot(t, want[i])
			s.requireIdle(t)
		}
	}
}

// testOnlyEventsAfterSubscribe checks that a subscriber gets no event
// published before it subscribed.
func testOnlyEventsAfterSubscribe(t *testing.T, tb *testBundle) {
	const topic = "after"
	e1, e2, e3 := event(tb.app, topic, 1), event(tb.app, topic, 2), event(tb.app, topic, 3)

	tb.publish(t, e1)
	s1 := tb.subscribe(t, tb.app, topic)
	tb.publish(t, e2)
	s1.awaitID(t, tb, 2)
	s2 := tb.subscribe(t, tb.app, topic)
	tb.publish(t, e3)
	s2.requireWake(t, tb, "event #3")
	s1.awaitID(t, tb, 3)
	s2.awaitID(t, tb, 3)

	// Events of a topic arrive in order, so had e1 or e2 been delivered they
	// would have come before e3.
	s1.requireGot(t, []*broadcast.Event{e2, e3})
	s2.requireGot(t, []*broadcast.Event{e3})
	s1.requireIdle(t)
	s2.requireIdle(t)
}

// testReceiveAppends checks that Receive appends to dst and keeps what dst
// already held.
func testReceiveAppends(t *testing.T, tb *testBundle) {
	const topic = "append"
	s := tb.subscribe(t, tb.app, topic)
	held := event(tb.app, "held", 0)
	s.got = append(make([]*broadcast.Event, 0, 4), held) // receive appends to s.got
	e1 := event(tb.app, topic, 1)
	tb.publish(t, e1)
	s.awaitID(t, tb, 1)
	require.Equal(t, describe([]*broadcast.Event{held, e1}), describe(s.got))
}

// testPublishWithoutSubscribers checks that Publish and DropTopic on a topic
// nobody follows, or nobody follows any more, do nothing: no panic, and a
// later subscriber does not see those events.
func testPublishWithoutSubscribers(t *testing.T, tb *testBundle) {
	const topic = "nobody"
	other := tb.app + ".other"

	// Never subscribed, in a known and an unknown app.
	tb.publish(t, event(tb.app, topic, 1), event(other, topic, 1))
	tb.b.DropTopic(t.Context(), tb.app, "never-subscribed")

	// Subscribed once, then left.
	left := tb.subscribe(t, tb.app, topic)
	left.cancel()
	require.ErrorIs(t, left.awaitEnd(t, tb), broadcast.ErrClosed)
	tb.publish(t, event(tb.app, topic, 2))

	// Subscribed once, then dropped.
	dropped := tb.subscribe(t, tb.app, topic)
	tb.b.DropTopic(t.Context(), tb.app, topic)
	require.ErrorIs(t, dropped.awaitEnd(t, tb), broadcast.ErrTopicDropped)
	tb.publish(t, event(tb.app, topic, 3))
	tb.b.DropTopic(t.Context(), tb.app, topic)

	s := tb.subscribe(t, tb.app, topic)
	e4 := event(tb.app, topic, 4)
	tb.publish(t, e4)
	s.awaitID(t, tb, 4)
	s.requireGot(t, []*broadcast.Event{e4})
	require.Empty(t, describe(left.got))
	require.Empty(t, describe(dropped.got))
}

// testAppsAndTopicsIsolated checks that subscribers get only their own
// (app, topic), including the same topic name in another app, and pairs whose
// app and topic would read the same if joined with a dot.
func testAppsAndTopicsIsolated(t *testing.T, tb *testBundle) {
	appA, appB := tb.app+".a", tb.app+".b"
	keys := []struct{ app, topic string }{
		{appA, "news"},
		{appB, "news"},
		{appA, "sport"},
		{appA + ".x", "y.z"},
		{appA + ".x.y", "z"},
	}
	subs := make([]*subscriber, len(keys))
	want := make([][]*broadcast.Event, len(keys))
	for i, k := range keys {
		subs[i] = tb.subscribe(t, k.app, k.topic)
	}
	// Each key gets a different number of events, one per key and round.
	for id := uint64(1); id <= uint64(len(keys)); id++ {
		var evs []*broadcast.Event
		for i, k := range keys {
			if id <= uint64(i+1) {
				ev := event(k.app, k.topic, id)
				evs = append(evs, ev)
				want[i] = append(want[i], ev)
			}
		}
		tb.publish(t, evs...)
		for i, s := range subs {
			s.awaitID(t, tb, min(id, uint64(i+1)))
		}
	}
	for i, s := range subs {
		s.requireGot(t, want[i])
		s.requireIdle(t)
	}
}

// testSlowSubscriberLosesOldest checks drop-oldest: a subscriber that does not
// read while 3×BufferSize events are published loses the oldest 2×BufferSize,
// is told exactly that, and then gets the newest BufferSize.
func testSlowSubscriberLosesOldest(t *testing.T, tb *testBundle) {
	const topic = "lag"
	n := tb.opts.BufferSize
	slow := tb.subscribe(t, tb.app, topic)
	// reader keeps up, and tells when everything has been delivered.
	reader := tb.subscribe(t, tb.app, topic)

	var all []*broadcast.Event
	for range 3 {
		var evs []*broadcast.Event
		for range n {
			ev := event(tb.app, topic, uint64(len(all)+1))
			evs = append(evs, ev)
			all = append(all, ev)
		}
		tb.publish(t, evs...)
		reader.awaitID(t, tb, uint64(len(all)))
	}
	reader.requireGot(t, all)

	slow.awaitID(t, tb, uint64(3*n))
	require.Equal(t, uint64(2*n), slow.missed, "missed")
	require.Equal(t, describe(all[2*n:]), describe(slow.got))
	require.NoError(t, slow.err)

	// Caught up, the subscriber loses nothing more.
	next := event(tb.app, topic, uint64(3*n+1))
	tb.publish(t, next)
	slow.awaitID(t, tb, next.ID)
	require.Equal(t, uint64(2*n), slow.missed, "missed")
	require.Equal(t, describe(append(all[2*n:], next)), describe(slow.got))
	slow.requireIdle(t)
}

// testSlowSubscriberDoesNotStarveOthers checks that subscribers that never
// read neither block Publish nor cost a reading subscriber any event.
func testSlowSubscriberDoesNotStarveOthers(t *testing.T, tb *testBundle) {
	const topic = "starve"
	for range 3 {
		tb.subscribe(t, tb.app, topic) // never reads
	}
	reader := tb.subscribe(t, tb.app, topic)
	for range 3 {
		tb.subscribe(t, tb.app, topic) // never reads
	}

	var all []*broadcast.Event
	for range 10 {
		var evs []*broadcast.Event
		for range tb.opts.BufferSize {
			ev := event(tb.app, topic, uint64(len(all)+1))
			evs = append(evs, ev)
			all = append(all, ev)
		}
		tb.publish(t, evs...)
		reader.awaitID(t, tb, uint64(len(all)))
	}
	reader.requireGot(t, all)
	reader.requireIdle(t)
}

// testDropTopic checks that DropTopic ends every subscription of the topic,
// after the events published before the drop, leaves other topics alone,
// and that the topic can be subscribed to afresh.
func testDropTopic(t *testing.T, tb *testBundle) {
	const topic, kept = "doomed", "kept"
	otherApp := tb.app + ".other"
	dropped := []*subscriber{tb.subscribe(t, tb.app, topic), tb.subscribe(t, tb.app, topic)}
	keptSub := tb.subscribe(t, tb.app, kept)
	sameName := tb.subscribe(t, otherApp, topic)

	var before []*broadcast.Event
	for id := range uint64(min(tb.opts.BufferSize, 3)) {
		before = append(before, event(tb.app, topic, id+1))
	}
	k1, o1 := event(tb.app, kept, 1), event(otherApp, topic, 1)
	tb.publish(t, append(before, k1, o1)...)
	dropped[0].awaitID(t, tb, uint64(len(before))) // the other receives it all with the end
	keptSub.awaitID(t, tb, 1)
	sameName.awaitID(t, tb, 1)
	dropped[0].drainWake()
	tb.b.DropTopic(t.Context(), tb.app, topic)

	for _, s := range dropped {
		s.requireWake(t, tb, "the drop")
		require.ErrorIs(t, s.awaitEnd(t, tb), broadcast.ErrTopicDropped)
		s.requireGot(t, before)
		// The end is final.
		evs, missed, err := s.receive(t)
		require.ErrorIs(t, err, broadcast.ErrTopicDropped)
		require.Empty(t, describe(evs))
		require.Zero(t, missed)
	}

	// Other topics, and the same name in another app, are untouched.
	k2, o2 := event(tb.app, kept, 2), event(otherApp, topic, 2)
	tb.publish(t, k2, o2)
	keptSub.awaitID(t, tb, 2)
	sameName.awaitID(t, tb, 2)
	keptSub.requireGot(t, []*broadcast.Event{k1, k2})
	sameName.requireGot(t, []*broadcast.Event{o1, o2})

	// A new subscriber starts afresh, ids included, and the old ones stay ended.
	fresh := tb.subscribe(t, tb.app, topic)
	f1 := event(tb.app, topic, 1)
	tb.publish(t, f1)
	fresh.awaitID(t, tb, 1)
	fresh.requireGot(t, []*broadcast.Event{f1})
	fresh.requireIdle(t)
	for _, s := range dropped {
		evs, _, err := s.receive(t)
		require.ErrorIs(t, err, broadcast.ErrTopicDropped)
		require.Empty(t, describe(evs))
	}

	// And it can be dropped again.
	tb.b.DropTopic(t.Context(), tb.app, topic)
	require.ErrorIs(t, fresh.awaitEnd(t, tb), broadcast.ErrTopicDropped)
	keptSub.requireIdle(t)
}

// testContextCancel checks that ending a subscription's context wakes it and
// ends it with ErrClosed, and touches no other subscriber.
func testContextCancel(t *testing.T, tb *testBundle) {
	const topic = "cancel"
	s := tb.subscribe(t, tb.app, topic)
	other := tb.subscribe(t, tb.app, topic)
	e1 := event(tb.app, topic, 1)
	tb.publish(t, e1)
	s.awaitID(t, tb, 1)
	other.awaitID(t, tb, 1)

	s.drainWake()
	s.cancel()
	s.requireWake(t, tb, "the cancel")
	require.ErrorIs(t, s.awaitEnd(t, tb), broadcast.ErrClosed)
	e2 := event(tb.app, topic, 2)
	tb.publish(t, e2)
	other.awaitID(t, tb, 2)
	other.requireGot(t, []*broadcast.Event{e1, e2})

	// The end is final and receives nothing published after it.
	evs, _, err := s.receive(t)
	require.ErrorIs(t, err, broadcast.ErrClosed)
	require.Empty(t, describe(evs))
	s.requireGot(t, []*broadcast.Event{e1})
}

// testContextEndedBeforeSubscribe checks that a context that has already
// ended either fails Subscribe or yields a subscription that ends at once.
func testContextEndedBeforeSubscribe(t *testing.T, tb *testBundle) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wake := make(chan struct{}, 1)
	sub, err := tb.b.Subscribe(ctx, tb.app, "ended", broadcast.WakeChan(wake))
	if err != nil {
		return
	}
	s := &subscriber{sub: sub, wake: wake, cancel: cancel}
	require.ErrorIs(t, s.awaitEnd(t, tb), broadcast.ErrClosed)
}

// testSharedWake checks that one wake channel shared by subscriptions to
// several topics fires for an event on any of them, and for each one's end.
func testSharedWake(t *testing.T, tb *testBundle) {
	topics := []string{"shared-1", "shared-2", "shared-3"}
	wake := make(chan struct{}, 1)
	subs := make([]*subscriber, len(topics))
	for i, topic := range topics {
		subs[i] = tb.subscribeWake(t, tb.app, topic, wake)
	}

	// awaitAll receives from every subscription on each wake, as a stream
	// does, until done holds.
	awaitAll := func(t *testing.T, what string, done func() bool) {
		t.Helper()
		timer := time.NewTimer(tb.opts.Timeout)
		defer timer.Stop()
		for {
			for _, s := range subs {
				if s.err == nil {
					_, _, _ = s.receive(t) // results are kept on s
				}
			}
			if done() {
				return
			}
			select {
			case <-wake:
			case <-timer.C:
				require.FailNow(t, "no wake", "waiting for %s", what)
			}
		}
	}

	// wakeAfter does act and requires a wake after it: with nothing
	// pending before, receiving first would not show that wake fires.
	wakeAfter := func(t *testing.T, what string, act func()) {
		t.Helper()
		select {
		case <-wake:
		default:
		}
		act()
		select {
		case <-wake:
		case <-time.After(tb.opts.Timeout):
			require.FailNow(t, "no wake", "after %s", what)
		}
	}

	want := make([][]*broadcast.Event, len(topics))
	for round, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 1, 0}} {
		for _, i := range order {
			ev := event(tb.app, topics[i], uint64(len(want[i])+1))
			want[i] = append(want[i], ev)
			wakeAfter(t, "publishing to "+topics[i], func() { tb.publish(t, ev) })
			awaitAll(t, fmt.Sprintf("round %d: %s", round, describe([]*broadcast.Event{ev})[0]), func() bool {
				return len(subs[i].got) == len(want[i])
			})
			for j, s := range subs {
				s.requireGot(t, want[j])
			}
		}
	}

	wakeAfter(t, "the drop", func() { tb.b.DropTopic(t.Context(), tb.app, topics[1]) })
	awaitAll(t, "the drop", func() bool { return subs[1].err != nil })
	require.ErrorIs(t, subs[1].err, broadcast.ErrTopicDropped)

	wakeAfter(t, "the cancel", subs[2].cancel)
	awaitAll(t, "the cancel", func() bool { return subs[2].err != nil })
	require.ErrorIs(t, subs[2].err, broadcast.ErrClosed)

	last := event(tb.app, topics[0], uint64(len(want[0])+1))
	want[0] = append(want[0], last)
	wakeAfter(t, "the last event", func() { tb.publish(t, last) })
	awaitAll(t, "the last event", func() bool { return len(subs[0].got) == len(want[0]) })
	subs[0].requireGot(t, want[0])
	require.NoError(t, subs[0].err)
}

// testConcurrent subscribes, receives, publishes, cancels and drops topics
// from many goroutines at once. Run with -race it finds unguarded state; in
// any case every subscription must end and every call return, and each
// subscriber must see its topic's events in order.
func testConcurrent(t *testing.T, tb *testBundle) {
	const (
		topics      = 4
		publishes   = 300 // per topic, from one goroutine per topic
		subscribers = 8
		rounds      = 25 // subscriptions per subscriber goroutine
		droppers    = 2
		drops       = 40 // per dropper
	)
	topic := func(i int) string { return "race-" + strconv.Itoa(i%topics) }
	ctx := t.Context()

	var wg sync.WaitGroup
	for i := range topics {
		wg.Go(func() {
			for id := range uint64(publishes) {
				tb.b.Publish(ctx, event(tb.app, topic(i), id+1))
			}
		})
	}
	for d := range droppers {
		wg.Go(func() {
			for j := range drops {
				tb.b.DropTopic(ctx, tb.app, topic(d+j))
			}
		})
	}
	for g := range subscribers {
		wg.Go(func() {
			var buf []*broadcast.Event
			for r := range rounds {
				sctx, cancel := context.WithCancel(ctx)
				wake := make(chan struct{}, 1)
				sub, err := tb.b.Subscribe(sctx, tb.app, topic(g+r), broadcast.WakeChan(wake))
				if !assert.NoError(t, err, "Subscribe") {
					cancel()
					return
				}
				var last uint64
				check := func(evs []*broadcast.Event) bool {
					for _, ev := range evs {
						if !assert.Greater(t, ev.ID, last, "out of order on %s", topic(g+r)) {
							return false
						}
						last = ev.ID
					}
					return true
				}
				// Take what is there now a few times, then leave, from the
				// context half the time and after a drop otherwise.
				ended := false
				for range 3 {
					buf, _, err = sub.Receive(buf[:0])
					if !check(buf) {
						cancel()
						return
					}
					if err != nil {
						ended = true
						break
					}
				}
				if !ended && r%2 == 0 {
					tb.b.DropTopic(ctx, tb.app, topic(g+r))
				}
				cancel()
				timer := time.NewTimer(tb.opts.Timeout)
				for !ended {
					buf, _, err = sub.Receive(buf[:0])
					if !check(buf) {
						break
					}
					if err != nil {
						ended = true
						if !errors.Is(err, broadcast.ErrClosed) {
							assert.ErrorIs(t, err, broadcast.ErrTopicDropped)
						}
						break
					}
					select {
					case <-wake:
					case <-timer.C:
						assert.Fail(t, "subscription did not end", "on %s", topic(g+r))
						timer.Stop()
						return
					}
				}
				timer.Stop()
				clear(buf)
				if t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// The broadcaster still works.
	s := tb.subscribe(t, tb.app, topic(0))
	ev := event(tb.app, topic(0), publishes+1)
	tb.publish(t, ev)
	s.awaitID(t, tb, ev.ID)
	s.requireGot(t, []*broadcast.Event{ev})
}

// event returns event id of (app, topic), with a message naming all three.
func event(app, topic string, id uint64) *broadcast.Event {
	msg, _ := json.Marshal(map[string]any{"app": app, "topic": topic, "id": id})
	return &broadcast.Event{
		App:         app,
		Topic:       topic,
		ID:          id,
		Message:     msg,
		PublishedAt: time.Unix(1_700_000_000, int64(id)*1000).UTC(),
	}
}

// describe renders events for comparison and failure messages. It leaves out
// PublishedAt, which a backend may round.
func describe(evs []*broadcast.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s/%s#%d %s", ev.App, ev.Topic, ev.ID, ev.Message))
	}
	return out
}

func lastOf(evs []*broadcast.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return describe(evs[len(evs)-1:])[0]
}

// appName derives an app name from the test's name, within the characters
// Herald allows in names, so that cases sharing a backend stay apart.
func appName(t *testing.T) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r == '/':
			return '.'
		default:
			return '_'
		}
	}, t.Name())
}
