package broadcast_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/broadcasttest"
)

func TestMemory(t *testing.T) {
	t.Parallel()

	for _, size := range []int{1, 16, 0} {
		t.Run("BufferSize="+strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			newBroadcaster := func(t *testing.T) broadcast.Broadcaster {
				t.Helper()
				return newMemory(t, broadcast.MemoryOptions{BufferSize: size})
			}
			effective := size
			if effective == 0 {
				effective = broadcast.DefaultBufferSize
			}
			broadcasttest.Run(t, newBroadcaster, broadcasttest.Options{BufferSize: effective})
		})
	}
}

func TestNewMemory(t *testing.T) {
	t.Parallel()

	t.Run("RejectsNegativeBufferSize", func(t *testing.T) {
		t.Parallel()
		m, err := broadcast.NewMemory(broadcast.MemoryOptions{BufferSize: -1})
		require.Error(t, err)
		require.Nil(t, m)
	})

	t.Run("ZeroBufferSizeMeansDefault", func(t *testing.T) {
		t.Parallel()
		m := newMemory(t, broadcast.MemoryOptions{})
		wake := make(chan struct{}, 1)
		sub, err := m.Subscribe(t.Context(), "app", "topic", broadcast.WakeChan(wake))
		require.NoError(t, err)
		const n = broadcast.DefaultBufferSize + 1
		for id := range uint64(n) {
			m.Publish(t.Context(), event("app", "topic", id+1))
		}
		evs, missed, err := sub.Receive(nil)
		require.NoError(t, err)
		require.Equal(t, uint64(1), missed)
		require.Len(t, evs, broadcast.DefaultBufferSize)
		require.Equal(t, uint64(2), evs[0].ID)
		require.Equal(t, uint64(n), evs[len(evs)-1].ID)
	})
}

func TestMemorySubscribe(t *testing.T) {
	t.Parallel()

	t.Run("RejectsNilWake", func(t *testing.T) {
		t.Parallel()
		m := newMemory(t, broadcast.MemoryOptions{})
		_, err := m.Subscribe(t.Context(), "app", "topic", nil)
		require.Error(t, err)
		require.Zero(t, broadcast.TopicCount(m), "a rejected subscriber holds no ring")
	})

	t.Run("DeliversSynchronously", func(t *testing.T) {
		t.Parallel()
		// Not part of the contract, which allows asynchronous delivery, but
		// Memory's callers and pgnotify's fan-out count on it.
		m := newMemory(t, broadcast.MemoryOptions{})
		wake := make(chan struct{}, 1)
		sub, err := m.Subscribe(t.Context(), "app", "topic", broadcast.WakeChan(wake))
		require.NoError(t, err)
		ev := event("app", "topic", 1)
		m.Publish(t.Context(), ev)
		require.Len(t, wake, 1, "woken by the time Publish returns")
		evs, _, err := sub.Receive(nil)
		require.NoError(t, err)
		require.Equal(t, []*broadcast.Event{ev}, evs)
	})
}

// TestMemoryTopicsLeaveNothingBehind subscribes once to each of many topics,
// leaves them all, and checks that the registry and the heap are back to
// where they started.
//
// Not parallel: it measures the heap, which tests running alongside would
// disturb. Parallel tests only start once every sequential one has finished.
func TestMemoryTopicsLeaveNothingBehind(t *testing.T) {
	const topics = 10_000
	m := newMemory(t, broadcast.MemoryOptions{})
	// The subscriptions' contexts hang from one of their own, ended before
	// the last measurement: a context's map of children never shrinks
	// either, and t.Context() outlives the test.
	parent, cancelParent := context.WithCancel(t.Context())
	before := liveHeap()

	type subscriber struct {
		sub    *broadcast.Subscription
		wake   chan struct{}
		cancel context.CancelFunc
	}
	subs := make([]subscriber, topics)
	for i := range subs {
		topic := "topic-" + strconv.Itoa(i)
		ctx, cancel := context.WithCancel(parent)
		wake := make(chan struct{}, 1)
		sub, err := m.Subscribe(ctx, "app", topic, broadcast.WakeChan(wake))
		require.NoError(t, err)
		subs[i] = subscriber{sub, wake, cancel}
		m.Publish(ctx, event("app", topic, 1))
		<-wake // the event's
	}
	require.Equal(t, topics, broadcast.TopicCount(m))
	held := liveHeap()

	// Leave one at a time, as clients come and go. Memory wakes a subscriber
	// once it has left, so there is no need to poll; and the goroutines
	// context.AfterFunc starts do not pile up, which would grow the
	// runtime's pool of goroutine descriptors, which never shrinks.
	for _, s := range subs {
		s.cancel()
		select {
		case <-s.wake:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no wake after cancel")
		}
		_, _, err := s.sub.Receive(nil)
		require.ErrorIs(t, err, broadcast.ErrClosed)
	}
	require.Zero(t, broadcast.TopicCount(m))
	cancelParent()
	subs, parent = nil, nil //nolint:ineffassign // drop the references before measuring the heap
	after := liveHeap()
	runtime.KeepAlive(m)

	t.Logf("live heap: %d B before, %+d B with %d topics, %+d B after they left",
		before, int64(held)-int64(before), topics, int64(after)-int64(before))
	// The check below is only meaningful if holding the topics shows up.
	require.Greater(t, int64(held)-int64(before), int64(1<<20), "heap growth while held")
	// What stays is runtime noise, 20-40 KiB; a registry map that never
	// shrank would keep ~800 KiB for 10,000 keys.
	require.Less(t, int64(after)-int64(before), int64(256<<10), "heap growth after every topic left")
}

// TestMemoryDropTopicReleasesEvents checks that once a topic is dropped and
// its subscribers have let go of their subscriptions, its events can be
// collected even though the subscriptions' contexts live on, as a stream on
// several topics does when one of them is dropped.
func TestMemoryDropTopicReleasesEvents(t *testing.T) {
	t.Parallel()
	m := newMemory(t, broadcast.MemoryOptions{})
	wake := make(chan struct{}, 1)
	sub, err := m.Subscribe(t.Context(), "app", "topic", broadcast.WakeChan(wake))
	require.NoError(t, err)

	ev := event("app", "topic", 1)
	collected := make(chan struct{})
	runtime.AddCleanup(ev, func(c chan struct{}) { close(c) }, collected)
	m.Publish(t.Context(), ev)
	m.DropTopic(t.Context(), "app", "topic")
	evs, _, err := sub.Receive(nil)
	require.ErrorIs(t, err, broadcast.ErrTopicDropped)
	require.Len(t, evs, 1)
	evs, sub, ev = nil, nil, nil //nolint:ineffassign // drop the references so the event can be collected

	require.Eventually(t, func() bool {
		runtime.GC()
		select {
		case <-collected:
			return true
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond, "event collected while the subscription's context lives")
}

// TestMemoryPublishAllocations checks that Publish allocates nothing without
// subscribers, nor with many once the topic's ring is full.
//
// Not parallel: AllocsPerRun counts every allocation in the process.
func TestMemoryPublishAllocations(t *testing.T) {
	const bufferSize = 8
	m := newMemory(t, broadcast.MemoryOptions{BufferSize: bufferSize})
	ctx := t.Context()

	never := event("app", "never-subscribed", 1)
	require.Zero(t, testing.AllocsPerRun(1000, func() { m.Publish(ctx, never) }), "no subscribers ever")

	left, cancel := context.WithCancel(ctx)
	_, err := m.Subscribe(left, "app", "left", broadcast.WakeChan(make(chan struct{}, 1)))
	require.NoError(t, err)
	cancel()
	require.Eventually(t, func() bool { return broadcast.TopicCount(m) == 0 }, 10*time.Second, time.Millisecond)
	gone := event("app", "left", 1)
	require.Zero(t, testing.AllocsPerRun(1000, func() { m.Publish(ctx, gone) }), "every subscriber left")

	for range 100 {
		_, err := m.Subscribe(ctx, "app", "busy", broadcast.WakeChan(make(chan struct{}, 1)))
		require.NoError(t, err)
	}
	busy := event("app", "busy", 1)
	for range bufferSize {
		m.Publish(ctx, busy)
	}
	require.Zero(t, testing.AllocsPerRun(1000, func() { m.Publish(ctx, busy) }), "100 subscribers, ring full")
}

// BenchmarkPublish measures Publish alone, to subscribers that never read:
// one slot write, and a wake per subscriber that finds one already pending.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("subscribers="+strconv.Itoa(n), func(b *testing.B) {
			m := newMemory(b, broadcast.MemoryOptions{})
			for range n {
				_, err := m.Subscribe(b.Context(), "app", "topic", broadcast.WakeChan(make(chan struct{}, 1)))
				require.NoError(b, err)
			}
			ev := event("app", "topic", 1)
			b.ReportAllocs()
			for b.Loop() {
				m.Publish(b.Context(), ev)
			}
		})
	}
}

// BenchmarkFanout measures one event's trip to every subscriber: a new event,
// Publish, then each subscriber's Receive and Frame, as an SSE stream does.
// allocs/op stays flat as subscribers grow: the event is encoded once and
// shared, and Receive appends into a reused slice.
func BenchmarkFanout(b *testing.B) {
	encode := func(ev *broadcast.Event) []byte {
		frame := make([]byte, 0, 64+len(ev.Message))
		frame = append(frame, "id: "...)
		frame = strconv.AppendUint(frame, ev.ID, 10)
		frame = append(frame, "\ndata: "...)
		frame = append(frame, ev.Message...)
		return append(frame, "\n\n"...)
	}
	for _, n := range []int{1, 100, 1000} {
		b.Run("subscribers="+strconv.Itoa(n), func(b *testing.B) {
			m := newMemory(b, broadcast.MemoryOptions{})
			subs := make([]*broadcast.Subscription, n)
			for i := range subs {
				var err error
				subs[i], err = m.Subscribe(b.Context(), "app", "topic", broadcast.WakeChan(make(chan struct{}, 1)))
				require.NoError(b, err)
			}
			dst := make([]*broadcast.Event, 0, 1)
			msg := []byte(`{"price":42.5,"symbol":"HRLD"}`)
			var written int
			b.ReportAllocs()
			id := uint64(0)
			for b.Loop() {
				id++
				m.Publish(b.Context(), &broadcast.Event{App: "app", Topic: "topic", ID: id, Message: msg})
				for _, sub := range subs {
					var err error
					dst, _, err = sub.Receive(dst[:0])
					if err != nil {
						b.Fatal(err)
					}
					for _, ev := range dst {
						written += len(ev.Frame(encode))
					}
				}
			}
			clear(dst)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			if written == 0 {
				b.Fatal("nothing delivered")
			}
		})
	}
}

func newMemory(tb testing.TB, opts broadcast.MemoryOptions) *broadcast.Memory {
	tb.Helper()
	m, err := broadcast.NewMemory(opts)
	require.NoError(tb, err)
	return m
}

func event(app, topic string, id uint64) *broadcast.Event {
	return &broadcast.Event{App: app, Topic: topic, ID: id, Message: fmt.Appendf(nil, `{"n":%d}`, id)}
}

// liveHeap returns the bytes of heap objects still reachable after a full
// collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
