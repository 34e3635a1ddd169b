package sse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/event"
)

// stream is one connection's state: a cursor per topic and a write buffer
// that is released between bursts. One goroutine runs it at a time: the
// request's until Serve hands it off, then its own.
type stream struct {
	h                *Handler
	ctx              context.Context // ends the stream: Close, the client leaving (until handed off), end
	cancel           context.CancelFunc
	stopRequestWatch func() bool // stops the request's context from ending ctx
	release          func()      // Request.ReleaseFunc (or a no-op), called last by end
	out              sink

	app    string
	topics []string
	multi  bool
	wake   chan struct{}             // shared by subs: something may be ready to receive
	subs   []*broadcast.Subscription // nil once the topic was dropped
	live   int                       // subscriptions not dropped
	pos    []uint64                  // last id sent per topic
	replay []bool                    // topic i has history after pos[i] to replay first
	buf    []byte                    // frames waiting for one write
	evs    []*broadcast.Event        // scratch for Receive
	id     []byte                    // scratch for a multi-topic stream's cursor
	sent   int                       // message frames in buf, counted at flush
	// heartbeat fires every Options.Heartbeat while the stream runs; it
	// sets pingDue and wakes the stream.
	heartbeat *time.Timer
	pingDue   atomic.Bool
	// deadlineDue says the write deadline must move before the next
	// write: at the first write, then once half the timeout has passed
	// since it last moved (deadlineRefresh sets it). Moving it on every
	// write would cost a clock read and a syscall per delivery; the clock
	// read alone was a third of the fan-out loop's time on this VM.
	deadlineDue     atomic.Bool
	deadlineRefresh *time.Timer
	// until is when the stream must end (Request.Until); zero means never.
	until time.Time
	// keyID is Request.KeyID; revoked is set (and the stream woken) when
	// that key is revoked (EndKey).
	keyID   string
	revoked atomic.Bool
}

// subscribe subscribes to every topic, then reads each topic's head to fix
// the starting positions. Subscribing first means nothing committed in
// between is missed: events already covered by the positions are skipped
// by id.
func (s *stream) subscribe(cursor map[string]uint64) error {
	for i, t := range s.topics {
		sub, err := s.h.subscriber.Subscribe(s.ctx, s.app, t, s.wake)
		if err != nil {
			return fmt.Errorf("subscribe %q: %w", t, err)
		}
		s.subs[i] = sub
	}
	for i, t := range s.topics {
		tp, err := s.h.history.GetTopic(s.ctx, s.app, t)
		if err != nil {
			return fmt.Errorf("topic %q: %w", t, err)
		}
		p, ok := cursor[t]
		switch {
		case !ok:
			s.pos[i] = tp.LastID // start with what comes next
		case p > tp.LastID:
			// An id from an earlier topic of the same name: all of this one is new.
			s.replay[i] = tp.LastID > 0
		default:
			s.pos[i] = p
			s.replay[i] = p < tp.LastID
		}
	}
	return nil
}

// serve runs the stream to its end, then releases everything it holds.
func (s *stream) serve() {
	defer s.end()
	if !s.start() {
		return
	}
	m := s.h.metrics
	m.Connections.Inc()
	m.Subscribers.Add(float64(len(s.topics)))
	defer func() {
		m.Connections.Dec()
		m.Subscribers.Sub(float64(len(s.topics)))
	}()
	s.run()
}

// end releases the stream: its connection, its subscriptions (through its
// context), its counts and its admission. It runs once, in the goroutine
// that ran the stream.
func (s *stream) end() {
	if s.deadlineRefresh != nil {
		s.deadlineRefresh.Stop()
	}
	s.out.close()
	s.h.adm.unwatchKey(s)
	s.stopRequestWatch()
	s.cancel()
	s.h.count(s.app, s.topics, -1)
	s.h.adm.leave()
	s.release()
}

// start sends the stream's opening and replays history.
//
// The opening is the retry delay, once; a comment, so that onopen fires on
// an idle topic; and the start event, whose id is the starting position, so
// that a reconnect before the first event resumes from here instead of from
// whatever is new by then (event.AppendStartFrame says why it is an event).
func (s *stream) start() bool {
	s.buf = event.AppendRetry(s.buf, s.h.opts.Retry)
	s.buf = event.AppendComment(s.buf, "connected")
	s.id = s.appendID(s.id[:0], 0)
	s.buf = event.AppendStartFrame(s.buf, s.id)
	if !s.flush() {
		return false
	}
	for i := range s.topics {
		if s.replay[i] && !s.replayTopic(i) {
			return false
		}
	}
	return true
}

// run writes live events until the stream ends.
//
// It waits on the wake channel alone, with a plain receive rather than a
// select: the heartbeat, the token's expiry and the end of the context all
// arrive as wakes too (timers and context.AfterFunc set a flag and wake
// the stream). In the fan-out profile, selecting over four channels on
// every delivery cost more than everything else the stream does itself.
func (s *stream) run() {
	stopWake := context.AfterFunc(s.ctx, s.notify)
	defer stopWake()
	if hb := s.h.opts.Heartbeat; hb > 0 {
		s.heartbeat = time.AfterFunc(hb, func() { s.pingDue.Store(true); s.notify() })
		defer s.heartbeat.Stop()
	}
	if !s.until.IsZero() {
		t := time.AfterFunc(time.Until(s.until), s.notify)
		defer t.Stop()
	}
	s.live = len(s.subs)
	for range s.wake { // never closed: the loop ends by return
		if s.ctx.Err() != nil {
			return
		}
		if s.expiredNow() {
			s.endExpired()
			return
		}
		if s.revoked.Load() {
			s.endRevoked()
			return
		}
		if s.pingDue.Swap(false) {
			s.buf = event.AppendComment(s.buf, "ping")
			s.heartbeat.Reset(s.h.opts.Heartbeat)
		}
		if !s.deliver() {
			return
		}
	}
}

// deliver receives what every subscription holds, appends it to the
// pending frames with any lagged and topic_deleted events, and writes them
// in one write. It returns false when the stream must end. It is the
// per-wake work of the fan-out path (BenchmarkFanOut runs it alone).
func (s *stream) deliver() bool {
	for i, sub := range s.subs {
		if sub == nil {
			continue
		}
		// The missed count is not needed: appendEvent finds every gap,
		// from the ring or from anywhere else, in the ids themselves.
		var err error
		s.evs, _, err = sub.Receive(s.evs[:0])
		for _, ev := range s.evs {
			s.appendEvent(i, ev)
		}
		clear(s.evs) // do not pin events until the next burst
		switch {
		case errors.Is(err, broadcast.ErrTopicDropped):
			s.buf = event.AppendTopicDeleted(s.buf, s.topics[i])
			s.subs[i] = nil
			s.live--
		case err != nil:
			return false // the stream's context ended
		}
	}
	// A burst that arrived together with the expiry must not go out after
	// it.
	if s.expiredNow() {
		s.buf = s.buf[:0]
		s.sent = 0
		s.endExpired()
		return false
	}
	return s.flush() && s.live > 0
}

// armDeadlineRefresh sets deadlineDue once half the write timeout has
// passed. Only the stream's goroutine calls it.
func (s *stream) armDeadlineRefresh() {
	half := s.h.opts.WriteTimeout / 2
	if s.deadlineRefresh == nil {
		s.deadlineRefresh = time.AfterFunc(half, func() { s.deadlineDue.Store(true) })
		return
	}
	s.deadlineRefresh.Reset(half)
}

// notify wakes the stream; it never blocks.
func (s *stream) notify() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake is already pending
	}
}

// expiredNow reports whether the stream has outlived its token.
func (s *stream) expiredNow() bool {
	return !s.until.IsZero() && !time.Now().Before(s.until)
}

// endExpired tells the client that the token the stream was opened with
// expired, so a page can mint a new one and resume with ?last_event_id=
// (EventSource's own reconnect would reuse the expired token and get 401).
func (s *stream) endExpired() {
	s.buf = event.AppendTokenExpired(s.buf, s.until)
	s.flush()
}

// appendEvent adds ev's frame unless the stream already sent it, announcing
// first any gap before it: ids grow by one per message, so a gap is exactly
// the number of events this subscriber lost.
func (s *stream) appendEvent(i int, ev *broadcast.Event) {
	if ev.ID <= s.pos[i] {
		return // sent by replay, or before this stream's start
	}
	if gap := ev.ID - s.pos[i] - 1; gap > 0 {
		s.buf = event.AppendLagged(s.buf, gap, s.topics[i])
		s.h.metrics.Lagged.Add(float64(gap))
		s.h.metrics.LagEpisodes.Inc()
		if s.h.opts.Stats != nil {
			s.h.opts.Stats.Lagged(s.app, s.topics[i], gap)
		}
	}
	s.pos[i] = ev.ID
	frame := ev.Frame(event.EncodeFrame)
	if s.multi {
		s.id = s.appendID(s.id[:0], i)
		s.buf = event.AppendFrameWithID(s.buf, s.id, frame)
	} else {
		s.buf = append(s.buf, frame...)
	}
	s.sent++
}

// appendID appends the stream's current id: the message id on a
// single-topic stream, the cursor of every topic on a multi-topic one.
func (s *stream) appendID(b []byte, i int) []byte {
	if !s.multi {
		return appendUint(b, s.pos[i])
	}
	return appendCursor(b, s.topics, s.pos)
}

// replayTopic sends topic i's history after its position, in batches, until
// it has caught up; live events that arrive meanwhile wait in the
// subscription and are skipped by id if replay already sent them.
func (s *stream) replayTopic(i int) bool {
	for {
		msgs, err := s.h.history.History(s.ctx, s.app, s.topics[i], s.pos[i], s.h.opts.ReplayBatch)
		if err != nil {
			if s.ctx.Err() == nil {
				s.h.log.Warn("replay failed; stream closed", "app", s.app, "topic", s.topics[i], "err", err)
			}
			return false
		}
		for j := range msgs {
			m := &msgs[j]
			s.appendEvent(i, &broadcast.Event{App: m.AppID, Topic: m.Topic, ID: m.ID, Message: m.Body, PublishedAt: m.PublishedAt})
		}
		if !s.flush() {
			return false
		}
		if len(msgs) < s.h.opts.ReplayBatch {
			return true
		}
	}
}

// flush writes the pending frames in one write under a deadline. It returns
// false when the stream must end.
func (s *stream) flush() bool {
	if len(s.buf) == 0 {
		return true
	}
	var deadline time.Time
	if s.deadlineDue.Swap(false) {
		deadline = time.Now().Add(s.h.opts.WriteTimeout)
		s.armDeadlineRefresh()
	}
	err := s.out.write(s.buf, deadline)
	if cap(s.buf) > 64<<10 {
		s.buf = nil // a burst's buffer is not kept for an idle stream
	} else {
		s.buf = s.buf[:0]
	}
	sent := s.sent
	s.sent = 0
	if err == nil && sent > 0 {
		// Counted per write, not per event: a counter's atomic add per
		// delivery showed in the fan-out profile.
		s.h.metrics.Delivered.Add(float64(sent))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.h.metrics.SlowDisconnects.Inc()
			if s.h.opts.Stats != nil {
				s.h.opts.Stats.SlowDisconnect(s.app)
			}
			s.h.log.Info("slow consumer disconnected: a write missed its deadline", "timeout", s.h.opts.WriteTimeout)
		}
		return false
	}
	return true
}
