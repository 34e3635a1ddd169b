package stats_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/stats"
)

// clock is a settable time for the Recorder.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestSeriesPerAppAndWindow(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	r := stats.New(c.now)
	r.Connections("a", 1)
	r.Published("a", 2)
	r.Published("b", 1)
	r.Attempted("a", true)
	r.Attempted("a", false)
	r.Lagged("a", "orders", 7)
	c.add(stats.Bucket)
	r.Connections("a", 1)
	r.Connections("a", -1)
	r.SlowDisconnect("a")

	s := r.Snapshot("a")
	require.Len(t, s.Points, stats.Buckets)
	last, prev := s.Points[stats.Buckets-1], s.Points[stats.Buckets-2]
	require.Equal(t, int64(2), prev.Published)
	require.Equal(t, int64(1), prev.Delivered)
	require.Equal(t, int64(1), prev.Failed)
	require.Equal(t, int64(1), prev.Connections)
	require.Equal(t, int64(2), last.Connections, "the most at once in the bucket")
	require.Equal(t, int64(1), s.Connections)
	require.Equal(t, int64(0), s.Points[0].Connections, "before the first stream")
	require.Equal(t, []stats.Event{{At: c.now().Add(-stats.Bucket), Topic: "orders", Missed: 7}}, s.Lag)
	require.Len(t, s.SlowDisconnects, 1)
	require.True(t, last.At.Before(c.now()) || last.At.Equal(c.now()))

	require.Equal(t, int64(1), r.Snapshot("b").Points[stats.Buckets-2].Published, "apps are apart")
	require.ElementsMatch(t, []string{"a", "b"}, r.Apps())
	require.Zero(t, r.Snapshot("nobody").Connections)

	// Fifteen minutes later the old buckets are gone; the live stream is not.
	c.add(stats.Window)
	require.Equal(t, []string{"a"}, r.Apps(), "b went quiet; a has a live stream")
	s = r.Snapshot("a")
	for _, p := range s.Points {
		require.Zero(t, p.Published)
		require.Equal(t, int64(1), p.Connections)
	}
}

func TestEventsAndAppsAreBounded(t *testing.T) {
	t.Parallel()
	r := stats.New(nil)
	for range stats.MaxEvents + 10 {
		r.SlowDisconnect("a")
	}
	require.Len(t, r.Snapshot("a").SlowDisconnects, stats.MaxEvents)
}
