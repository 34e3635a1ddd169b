// Package stats keeps, per app, what the dashboard's health view draws: the
// last 15 minutes of publishes, webhook deliveries and live connections on
// this node, in 10-second buckets, and the latest lag episodes and slow
// disconnects. Everything is per app, so an app's key sees only its own
// numbers; nothing is kept across restarts or shared across nodes.
//
// # Concurrency
//
// A Recorder is safe for concurrent use: one mutex guards every app's
// series. Each record is a map lookup and an add, under the lock.
//
// # Bounds
//
// Each app costs a fixed ring of Buckets buckets and at most MaxEvents
// lag episodes and slow disconnects. Apps with no record for Window are
// dropped, and at most MaxApps apps are kept (the least recently active go
// first), so a flood of app ids cannot grow it without bound.
package stats

import (
	"slices"
	"sync"
	"time"
)

// Shape of the series.
const (
	// Bucket is the width of one point of a series.
	Bucket = 10 * time.Second
	// Window is how far back the series go.
	Window = 15 * time.Minute
	// Buckets is how many points a series has.
	Buckets = int(Window / Bucket)
	// MaxEvents bounds the lag episodes and slow disconnects kept per app.
	MaxEvents = 50
	// MaxApps bounds how many apps are kept.
	MaxApps = 10_000
)

// Event is one lag episode or slow disconnect.
type Event struct {
	At time.Time `json:"at"`
	// Topic names the topic of a lag episode; empty for a disconnect.
	Topic string `json:"topic,omitempty"`
	// Missed is how many events a lag episode lost.
	Missed uint64 `json:"missed,omitempty"`
}

// Point is one bucket of the series.
type Point struct {
	// At is the start of the bucket.
	At time.Time `json:"at"`
	// Published and Delivered count publishes and webhook deliveries taken
	// by their receiver; Failed counts failed webhook attempts.
	Published int64 `json:"published"`
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	// Connections is the most live streams of the app at once in the
	// bucket.
	Connections int64 `json:"connections"`
}

// Snapshot is an app's figures at one moment.
type Snapshot struct {
	// Points are the last Window of buckets, oldest first, the current
	// (partial) one last.
	Points []Point `json:"points"`
	// Connections is the app's live streams on this node now.
	Connections int64 `json:"connections"`
	// Lag and SlowDisconnects are the latest episodes, newest first.
	Lag             []Event `json:"lag_episodes"`
	SlowDisconnects []Event `json:"slow_disconnects"`
}

type bucket struct {
	n                            int64 // which bucket this is (unix time / Bucket); stale when older
	published, delivered, failed int64
	maxConns                     int64
	startConns                   int64 // live streams when the bucket began
}

type appSeries struct {
	ring  [Buckets]bucket
	conns int64 // live now
	lag   []Event
	slow  []Event
	last  time.Time // last record, for dropping idle apps
}

// Recorder keeps every app's figures. The zero value is not usable; use
// New.
type Recorder struct {
	now func() time.Time

	mu   sync.Mutex
	apps map[string]*appSeries // guarded by mu
}

// New returns a Recorder. now is the clock (nil means time.Now).
func New(now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, apps: make(map[string]*appSeries)}
}

// bucketLocked returns app's current bucket, creating the app when it is
// new. r.mu must be held.
func (r *Recorder) bucketLocked(app string, now time.Time) (*appSeries, *bucket) {
	s, ok := r.apps[app]
	if !ok {
		if len(r.apps) >= MaxApps {
			r.evictLocked(now)
		}
		s = &appSeries{}
		r.apps[app] = s
	}
	s.last = now
	n := now.UnixNano() / int64(Bucket)
	b := &s.ring[n%int64(Buckets)]
	if b.n != n {
		*b = bucket{n: n, maxConns: s.conns, startConns: s.conns}
	}
	return s, b
}

// evictLocked drops idle apps, or else the least recently active one.
// r.mu must be held.
func (r *Recorder) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for app, s := range r.apps {
		if now.Sub(s.last) > Window && s.conns == 0 {
			delete(r.apps, app)
			continue
		}
		if oldest == "" || s.last.Before(oldestAt) {
			oldest, oldestAt = app, s.last
		}
	}
	if len(r.apps) >= MaxApps {
		delete(r.apps, oldest)
	}
}

// Published counts n publishes of app: one for a single publish, the
// messages stored by a batch.
func (r *Recorder) Published(app string, n int) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, b := r.bucketLocked(app, r.now())
	b.published += int64(n)
}

// Attempted counts one webhook attempt of app, delivered or failed.
func (r *Recorder) Attempted(app string, delivered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, b := r.bucketLocked(app, r.now())
	if delivered {
		b.delivered++
	} else {
		b.failed++
	}
}

// Connections adds delta to app's live streams.
func (r *Recorder) Connections(app string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, b := r.bucketLocked(app, r.now())
	s.conns = max(0, s.conns+int64(delta))
	b.maxConns = max(b.maxConns, s.conns)
}

// Lagged records a lag episode of one of app's streams.
func (r *Recorder) Lagged(app, topic string, missed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	s, _ := r.bucketLocked(app, now)
	s.lag = pushEvent(s.lag, Event{At: now.UTC(), Topic: topic, Missed: missed})
}

// SlowDisconnect records that one of app's streams was cut off because it
// did not take a write in time.
func (r *Recorder) SlowDisconnect(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	s, _ := r.bucketLocked(app, now)
	s.slow = pushEvent(s.slow, Event{At: now.UTC()})
}

func pushEvent(evs []Event, e Event) []Event {
	if len(evs) >= MaxEvents {
		evs = slices.Delete(evs, 0, 1)
	}
	return append(evs, e)
}

// Apps returns the apps with a record in the last Window or a live stream,
// in no particular order: those whose figures are worth reporting.
func (r *Recorder) Apps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := make([]string, 0, len(r.apps))
	for app, s := range r.apps {
		if s.conns > 0 || now.Sub(s.last) <= Window {
			out = append(out, app)
		}
	}
	return out
}

// Snapshot returns app's figures now. An app with no record has all zeros.
func (r *Recorder) Snapshot(app string) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	cur := now.UnixNano() / int64(Bucket)
	snap := Snapshot{Points: make([]Point, Buckets), Lag: []Event{}, SlowDisconnects: []Event{}}
	s := r.apps[app]
	// A quiet bucket's connections are what the next recorded bucket began
	// with, carried backwards from now.
	var carry int64
	if s != nil {
		snap.Connections = s.conns
		carry = s.conns
	}
	for i := Buckets - 1; i >= 0; i-- {
		n := cur - int64(Buckets-1-i)
		p := Point{At: time.Unix(0, n*int64(Bucket)).UTC(), Connections: carry}
		if s != nil {
			if b := s.ring[n%int64(Buckets)]; b.n == n {
				p.Published, p.Delivered, p.Failed = b.published, b.delivered, b.failed
				p.Connections = b.maxConns
				carry = b.startConns
			}
		}
		snap.Points[i] = p
	}
	if s != nil {
		for i := len(s.lag) - 1; i >= 0; i-- {
			snap.Lag = append(snap.Lag, s.lag[i])
		}
		for i := len(s.slow) - 1; i >= 0; i-- {
			snap.SlowDisconnects = append(snap.SlowDisconnects, s.slow[i])
		}
	}
	return snap
}
