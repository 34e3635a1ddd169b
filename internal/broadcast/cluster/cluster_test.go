package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/broadcast/cluster/clustertest"
	"github.com/heraldhq/herald/internal/store"
)

// fakeHistory is a store's history in memory: topics and their messages.
type fakeHistory struct {
	mu     sync.Mutex
	topics map[string]*fakeTopic // "app/topic"
	reads  int
}

type fakeTopic struct {
	created time.Time
	msgs    []store.Message
}

func newHistory() *fakeHistory { return &fakeHistory{topics: make(map[string]*fakeTopic)} }

// create makes (app, topic) anew: a new life, with no messages.
func (h *fakeHistory) create(app, topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.topics[app+"/"+topic] = &fakeTopic{created: time.Now().Add(time.Duration(len(h.topics)) * time.Microsecond)}
}

func (h *fakeHistory) delete(app, topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.topics, app+"/"+topic)
}

// commit stores the next message of (app, topic) and returns its event.
func (h *fakeHistory) commit(app, topic string) *broadcast.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.topics[app+"/"+topic]
	m := store.Message{AppID: app, Topic: topic, ID: uint64(len(tp.msgs)) + 1, Body: []byte(`1`), PublishedAt: time.Now()}
	tp.msgs = append(tp.msgs, m)
	return clustertest.EventOf(m)
}

func (h *fakeHistory) GetTopic(_ context.Context, app, name string) (store.Topic, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.topics[app+"/"+name]
	if tp == nil {
		return store.Topic{}, store.ErrNotFound
	}
	return store.Topic{AppID: app, Name: name, LastID: uint64(len(tp.msgs)), CreatedAt: tp.created}, nil
}

func (h *fakeHistory) History(_ context.Context, app, topic string, after uint64, limit int) ([]store.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	tp := h.topics[app+"/"+topic]
	if tp == nil {
		return nil, store.ErrNotFound
	}
	if after >= uint64(len(tp.msgs)) {
		return nil, nil
	}
	out := tp.msgs[after:]
	return append([]store.Message(nil), out[:min(limit, len(out))]...), nil
}

// batchedHistory is fakeHistory with many topics' heads in one read.
type batchedHistory struct{ *fakeHistory }

func (h batchedHistory) TopicHeads(ctx context.Context, apps, names []string) ([]store.Topic, error) {
	var out []store.Topic
	for i := range apps {
		if tp, err := h.GetTopic(ctx, apps[i], names[i]); err == nil {
			out = append(out, tp)
		}
	}
	return out, nil
}

// histories runs a check test against a History with and without
// HeadsReader.
func histories(t *testing.T, test func(t *testing.T, h *fakeHistory, hist cluster.History)) {
	t.Run("per topic", func(t *testing.T) {
		t.Parallel()
		h := newHistory()
		test(t, h, h)
	})
	t.Run("batched", func(t *testing.T) {
		t.Parallel()
		h := newHistory()
		test(t, h, batchedHistory{h})
	})
}

// fakeTransport records what the sequencer asks of it and lets a test play
// the other nodes through its Receiver.
type fakeTransport struct {
	recv cluster.Receiver

	mu        sync.Mutex
	watching  map[string]int
	committed []uint64
	dropped   []string
}

func (f *fakeTransport) Start(_ context.Context, r cluster.Receiver) error {
	f.recv = r
	f.watching = make(map[string]int)
	return nil
}

func (f *fakeTransport) Watch(_ context.Context, app, topic string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watching[app+"/"+topic]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.watching[app+"/"+topic]--
	}, nil
}

func (f *fakeTransport) Committed(ev *broadcast.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed = append(f.committed, ev.ID)
}

func (f *fakeTransport) Dropped(_ context.Context, app, topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped = append(f.dropped, app+"/"+topic)
}

func (f *fakeTransport) Ready() error                       { return nil }
func (f *fakeTransport) Collectors() []prometheus.Collector { return nil }
func (f *fakeTransport) Close() error                       { return nil }

func (f *fakeTransport) watchers(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watching[key]
}

func open(t *testing.T, h cluster.History, check time.Duration) (*cluster.Broadcaster, *fakeTransport) {
	t.Helper()
	tr := &fakeTransport{}
	bc, err := cluster.Open(t.Context(), cluster.Config{Transport: tr, History: h, CheckInterval: check, MaxBackoff: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bc.Close()) })
	return bc, tr
}

// TestOutOfOrderNoticesDeliveredInOrder: notices arriving 3, 1, 2 reach
// the subscriber as 1, 2, 3, and a repeat of any is dropped.
func TestOutOfOrderNoticesDeliveredInOrder(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	bc, tr := open(t, h, 0)
	s := clustertest.Subscribe(t, bc, "a", "t")
	evs := []*broadcast.Event{h.commit("a", "t"), h.commit("a", "t"), h.commit("a", "t")}
	tr.recv.Messages("a", "t", evs[2:])
	tr.recv.Messages("a", "t", evs[:1])
	tr.recv.Messages("a", "t", evs[1:2])
	tr.recv.Messages("a", "t", evs) // all repeats
	bc.Publish(t.Context(), evs[2]) // this node's own commit, heard back
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(3))
	ev4 := h.commit("a", "t")
	bc.Publish(t.Context(), ev4)
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(4))
	require.Equal(t, []uint64{1, 2, 3, 4}, s.IDs())
	require.Equal(t, []uint64{3, 4}, tr.committed, "own commits go to the transport")
}

// TestGapFilledFromHistory: a notice for 3 with 1 and 2 never announced
// makes the node read 1 and 2 from history.
func TestGapFilledFromHistory(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	bc, tr := open(t, h, 0)
	s := clustertest.Subscribe(t, bc, "a", "t")
	h.commit("a", "t")
	h.commit("a", "t")
	tr.recv.Messages("a", "t", []*broadcast.Event{h.commit("a", "t")})
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(3))
	require.Equal(t, []uint64{1, 2, 3}, s.IDs())

	// A pointer names messages without carrying them.
	h.commit("a", "t")
	h.commit("a", "t")
	tr.recv.Pointer("a", "t", 5)
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(5))
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, s.IDs())
}

// TestCheckFindsLostNotices: messages whose notices never came, the last of
// a burst included, arrive through the periodic check.
func TestCheckFindsLostNotices(t *testing.T) {
	t.Parallel()
	histories(t, func(t *testing.T, h *fakeHistory, hist cluster.History) {
		h.create("a", "t")
		bc, _ := open(t, hist, 20*time.Millisecond)
		s := clustertest.Subscribe(t, bc, "a", "t")
		for range 7 {
			h.commit("a", "t")
		}
		s.Until(t, clustertest.CatchUp, clustertest.AtLeast(7))
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7}, s.IDs())
	})
}

// TestCheckFindsDeletion: a deletion whose notice never came ends the
// streams at the next check, as does a deletion and re-creation; a topic
// left alone keeps its stream.
func TestCheckFindsDeletion(t *testing.T) {
	t.Parallel()
	histories(t, func(t *testing.T, h *fakeHistory, hist cluster.History) {
		h.create("a", "gone")
		h.create("a", "again")
		h.create("a", "kept")
		bc, tr := open(t, hist, 20*time.Millisecond)
		gone := clustertest.Subscribe(t, bc, "a", "gone")
		again := clustertest.Subscribe(t, bc, "a", "again")
		kept := clustertest.Subscribe(t, bc, "a", "kept")
		h.delete("a", "gone")
		h.create("a", "again")
		gone.Until(t, clustertest.CatchUp, clustertest.Never)
		again.Until(t, clustertest.CatchUp, clustertest.Never)
		require.ErrorIs(t, gone.Err, broadcast.ErrTopicDropped)
		require.ErrorIs(t, again.Err, broadcast.ErrTopicDropped)
		tr.recv.Messages("a", "kept", []*broadcast.Event{h.commit("a", "kept")})
		kept.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
		require.NoError(t, kept.Err)
	})
}

// TestLateDropSparesNewLife: another node's deletion, heard after the topic
// was created again and subscribed to, leaves the new life's stream open,
// and the old life's stream ends.
func TestLateDropSparesNewLife(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	bc, tr := open(t, h, 0)
	old := clustertest.Subscribe(t, bc, "a", "t")
	h.delete("a", "t")
	h.create("a", "t")
	// Subscribed before the node heard of the deletion, it shares the old
	// life's state, and ends with it (a client reconnects).
	early := clustertest.Subscribe(t, bc, "a", "t")
	tr.recv.Dropped("a", "t")
	old.Until(t, clustertest.CatchUp, clustertest.Never)
	early.Until(t, clustertest.CatchUp, clustertest.Never)
	require.ErrorIs(t, old.Err, broadcast.ErrTopicDropped)
	require.ErrorIs(t, early.Err, broadcast.ErrTopicDropped)

	newer := clustertest.Subscribe(t, bc, "a", "t")
	tr.recv.Dropped("a", "t") // the same late notice again
	tr.recv.Messages("a", "t", []*broadcast.Event{h.commit("a", "t")})
	newer.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.Equal(t, []uint64{1}, newer.IDs())
	require.NoError(t, newer.Err)
}

// TestWatchFollowsSubscribers: the transport watches a topic once while it
// has local subscribers, and stops after the last leaves; a deletion here
// is told to the transport.
func TestWatchFollowsSubscribers(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	bc, tr := open(t, h, 0)
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	for _, ctx := range []context.Context{ctx1, ctx2} {
		_, err := bc.Subscribe(ctx, "a", "t", broadcast.WakeChan(make(chan struct{}, 1)))
		require.NoError(t, err)
	}
	require.Equal(t, 1, tr.watchers("a/t"))
	require.True(t, tr.recv.Watching("a", "t"))
	require.False(t, tr.recv.Watching("a", "other"))
	cancel1()
	cancel2()
	require.Eventually(t, func() bool { return tr.watchers("a/t") == 0 }, clustertest.CatchUp, time.Millisecond)
	require.False(t, tr.recv.Watching("a", "t"))

	_, err := bc.Subscribe(t.Context(), "a", "missing", broadcast.WakeChan(make(chan struct{}, 1)))
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Eventually(t, func() bool { return tr.watchers("a/missing") == 0 }, clustertest.CatchUp, time.Millisecond, "a failed subscribe unwatches")

	ctx3, cancel3 := context.WithCancel(t.Context())
	_, err = bc.Subscribe(ctx3, "a", "t", broadcast.WakeChan(make(chan struct{}, 1)))
	require.NoError(t, err)
	bc.DropTopic(t.Context(), "a", "t")
	require.Equal(t, []string{"a/t"}, tr.dropped)
	cancel3()
	require.Eventually(t, func() bool { return tr.watchers("a/t") == 0 }, clustertest.CatchUp, time.Millisecond, "a dropped topic's last subscriber unwatches")
}

// TestTenantsApart: a notice for app b's topic never reaches app a's
// subscriber of the same name.
func TestTenantsApart(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	h.create("b", "t")
	bc, tr := open(t, h, 0)
	sa := clustertest.Subscribe(t, bc, "a", "t")
	sb := clustertest.Subscribe(t, bc, "b", "t")
	evB := h.commit("b", "t")
	tr.recv.Messages("a", "t", []*broadcast.Event{evB}) // mislabelled: dropped
	tr.recv.Messages("b", "t", []*broadcast.Event{evB})
	sb.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	evA := h.commit("a", "t")
	evA.Message = []byte(`"a"`)
	tr.recv.Messages("a", "t", []*broadcast.Event{evA})
	sa.Until(t, clustertest.CatchUp, clustertest.AtLeast(1))
	require.Len(t, sa.Got, 1)
	require.Equal(t, "a", sa.Got[0].App)
	require.Equal(t, `"a"`, string(sa.Got[0].Message))
	require.Equal(t, "b", sb.Got[0].App)
}

// TestConfigRequired: a broadcaster without a transport or history is
// refused with a message saying which.
func TestConfigRequired(t *testing.T) {
	t.Parallel()
	_, err := cluster.Open(t.Context(), cluster.Config{History: newHistory()})
	require.ErrorContains(t, err, "Transport and History are required")
	_, err = cluster.Open(t.Context(), cluster.Config{Transport: &fakeTransport{}, History: newHistory(), CheckInterval: -1})
	require.Error(t, err)
	require.Equal(t, "cluster: durations and sizes must not be negative", fmt.Sprint(err))
}

// TestGapWaitsForItsNotice: a gap whose notices arrive within GapGrace is
// filled by them, without reading history.
func TestGapWaitsForItsNotice(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.create("a", "t")
	tr := &fakeTransport{}
	bc, err := cluster.Open(t.Context(), cluster.Config{Transport: tr, History: h, GapGrace: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bc.Close()) })
	s := clustertest.Subscribe(t, bc, "a", "t")
	evs := []*broadcast.Event{h.commit("a", "t"), h.commit("a", "t"), h.commit("a", "t")}
	tr.recv.Messages("a", "t", evs[2:])
	tr.recv.Messages("a", "t", evs[:2])
	s.Until(t, clustertest.CatchUp, clustertest.AtLeast(3))
	require.Equal(t, []uint64{1, 2, 3}, s.IDs())
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Zero(t, h.reads, "no history read for a gap its notices filled")
}
