package loadtest

import (
	"sync/atomic"
)

// measureWindow says which messages count. As fast as possible (no
// rate), it is the span of send times, in Unix nanoseconds. With a rate it
// is the span of job numbers the schedule makes due inside the measured
// window: when the publishers fell behind in the warmup, its backlog goes
// out early in the window, and counting by send time would count those
// messages too, more than the rate allows. It is set before the first
// publish and only read after.
type measureWindow struct {
	start, end atomic.Int64
	paced      atomic.Bool
	firstJob   atomic.Uint64
	endJob     atomic.Uint64
}

// Contains reports whether a message sent at t (Unix nanoseconds) counts,
// by its send time alone.
func (w *measureWindow) Contains(t int64) bool {
	return t >= w.start.Load() && t < w.end.Load()
}

// setSchedule makes jobs [first, end) the ones that count, whenever sent.
func (w *measureWindow) setSchedule(first, end uint64) {
	w.firstJob.Store(first)
	w.endJob.Store(end)
	w.paced.Store(true)
}

// Counts reports whether job n, sent at t (Unix nanoseconds), counts: by
// its place in the schedule when there is one, else by its send time.
func (w *measureWindow) Counts(n uint64, t int64) bool {
	if w.paced.Load() {
		return n >= w.firstJob.Load() && n < w.endJob.Load()
	}
	return w.Contains(t)
}
