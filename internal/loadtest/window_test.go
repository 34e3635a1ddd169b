package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMeasureWindowCountsBySchedule checks that with a rate a message
// counts by its place in the schedule, not by when it went out: warmup
// jobs sent late, inside the window, are not counted, so a window never
// holds more than the rate allows.
func TestMeasureWindowCountsBySchedule(t *testing.T) {
	t.Parallel()
	w := &measureWindow{}
	w.start.Store(1000)
	w.end.Store(2000)
	require.True(t, w.Counts(7, 1500), "no schedule: by send time")
	require.False(t, w.Counts(7, 2000))

	w.setSchedule(dueJobs(time.Second, 50), dueJobs(2*time.Second, 50))
	var counted int
	for n := range uint64(200) {
		if w.Counts(n, 1500) { // all sent inside the window
			counted++
		}
	}
	require.Equal(t, 50, counted, "1s at 50/s")
	require.False(t, w.Counts(49, 1500), "a warmup job sent late")
	require.True(t, w.Counts(50, 2500), "a window job sent late")

	for _, topics := range []int{1, 3} {
		for n := range uint64(20) {
			ti, seq := jobTopicSeq(n, topics)
			require.Equal(t, n, jobNumber(ti, seq, topics))
		}
	}
}
