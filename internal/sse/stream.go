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
// that is released between bursts.
//
// # Ownership
//
// One goroutine at a time owns the delivery state (subs' cursors, pos, buf,
// sent, held, id and the writes to out): the stream's goroutine while the
// stream is parked (direct false), the fan-out while it is direct, and
// within the fan-out the one worker serving the stream's turn (turn).
// Only the owner hands it over: the goroutine sets direct once everything
// pending is written (goDirect), the worker clears it when the socket does
// not take a whole write or the stream must end (park). Either then wakes
// the new owner. A wake (notify) reads direct to pick whom to wake, so a
// wake that races a hand-over may reach the old owner, which passes it on:
// nothing is lost, and since Receive is called by the owner alone, nothing
// is sent twice or out of order.
//
// The fan-out side of a stream moves through turn's states:
//
//	turnIdle ──notify──► turnQueued (on the run queue) ──worker takes it──► turnBusy
//	turnBusy ──notify──► turnAgain
//	turnBusy ──turn ends──► turnIdle; turnAgain ──turn ends──► turnQueued (back on the queue)
//
// so a stream is on the queue at most once, and is served by one worker at
// a time however many take from the queue. A worker that parks the stream
// still ends its turn this way: a goDirect that follows at once finds the
// stream busy, and its wake sends it round the queue again.
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
	wake   chan struct{}             // the stream's goroutine's: it may have something to do
	subs   []*broadcast.Subscription // nil once the topic was dropped
	live   int                       // subscriptions not dropped
	pos    []uint64                  // last id sent per topic
	replay []bool                    // topic i has history after pos[i] to replay first
	buf    []byte                    // frames waiting for one write
	evs    []*broadcast.Event        // scratch for Receive
	id     []byte                    // scratch for a multi-topic stream's cursor
	sent   int                       // message frames in buf, counted at flush
	// held is how many bytes at the start of buf must go out whatever
	// follows: the rest of a frame the worker wrote in part.
	held int

	// dw is out as a directWriter, or nil: then the stream is never direct.
	dw directWriter
	// fan is the fan-out that writes for the stream while it is direct;
	// nil when dw is.
	fan *fanout
	// direct says the fan-out owns the stream (see Ownership).
	direct atomic.Bool
	// turn is where the stream stands with the fan-out: turnIdle,
	// turnQueued, turnBusy or turnAgain (see Ownership).
	turn atomic.Uint32
	// stopping is set when ctx ends, before the wake that tells the owner.
	stopping atomic.Bool
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
		sub, err := s.h.subscriber.Subscribe(s.ctx, s.app, t, s.notify)
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
//
// While the stream is direct the fan-out delivers, and wakes reach it;
// the loop only waits for a fan-out worker to hand the stream back.
func (s *stream) run() {
	stopWake := context.AfterFunc(s.ctx, func() { s.stopping.Store(true); s.notify() })
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
	for {
		if !s.direct.Load() {
			if !s.step() {
				return
			}
			s.goDirect()
		}
		<-s.wake // never closed: the loop ends by return
	}
}

// step is one turn of the stream's goroutine: the end of the stream, the
// heartbeat, then delivery with writes that wait (under the deadline). It
// returns false when the stream must end.
func (s *stream) step() bool {
	if s.ctx.Err() != nil {
		return false
	}
	if s.expiredNow() {
		s.endExpired()
		return false
	}
	if s.revoked.Load() {
		s.endRevoked()
		return false
	}
	s.appendPingIfDue()
	return s.deliver()
}

// appendPingIfDue appends the heartbeat's comment once it is due and
// re-arms the heartbeat; the stream's owner calls it, goroutine or worker.
func (s *stream) appendPingIfDue() {
	if s.pingDue.Swap(false) {
		s.buf = event.AppendComment(s.buf, "ping")
		s.heartbeat.Reset(s.h.opts.Heartbeat)
	}
}

// goDirect hands the stream to the fan-out, if it has one. The stream's
// goroutine calls it once everything pending is written; what arrived
// since its last Receive is the fan-out's to deliver, so the stream is
// queued at once.
func (s *stream) goDirect() {
	if s.fan == nil || s.fan.gone.Load() {
		return
	}
	// A deadline left from a parked write would fail the direct ones
	// once passed; the next parked write sets a fresh one.
	if s.dw.clearDeadline() != nil {
		return // the connection is gone: the next parked write finds out
	}
	s.deadlineDue.Store(true)
	s.direct.Store(true)
	s.notify()
}

// park hands the stream back to its goroutine. Only the worker serving
// its turn calls it (or handBack).
func (s *stream) park() {
	s.direct.Store(false)
	s.wakeWriter()
}

// handBack parks a queued stream once the fan-out has stopped: no worker
// touches it again. Its turn is cleared first, so that a goDirect racing
// the park queues it again and has it handed back in turn.
func (s *stream) handBack() {
	s.turn.Store(turnIdle)
	s.park()
}

// deliverDirect is a fan-out worker's turn at a direct stream: it receives
// what every subscription holds and writes it with one write that does not
// wait. It parks the stream when the socket does not take the whole write
// (the goroutine then writes the rest under the deadline, and drains what
// piles up meanwhile) and when the stream must end. It returns how many
// message frames it wrote.
func (s *stream) deliverDirect() int {
	if !s.direct.Load() {
		s.wakeWriter() // a wake that raced park: the goroutine owns s
		return 0
	}
	if s.stopping.Load() || s.revoked.Load() {
		s.park()
		return 0
	}
	s.appendPingIfDue()
	if !s.receive() || s.live == 0 || s.expiredNow() {
		s.park() // the goroutine ends the stream, with the control event due
		return 0
	}
	if len(s.buf) == 0 {
		return 0
	}
	n, err := s.dw.tryWrite(s.buf)
	if err == nil && n == len(s.buf) {
		sent := s.sent
		s.sent = 0
		s.resetBuf()
		return sent
	}
	// The socket's buffer is full, or the write failed (which the
	// goroutine's write finds again, and ends the stream on).
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	s.held = len(s.buf)
	s.park()
	return 0
}

// deliver receives what every subscription holds and writes it, with what
// was pending, in one write that waits (under the deadline). It returns
// false when the stream must end.
func (s *stream) deliver() bool {
	if !s.receive() {
		return false
	}
	// A burst that arrived together with the expiry must not go out after
	// it.
	if s.expiredNow() {
		s.endExpired()
		return false
	}
	return s.flush() && s.live > 0
}

// receive appends what every subscription holds to the pending frames,
// with any lagged and topic_deleted events. It returns false when the
// stream's context ended.
func (s *stream) receive() bool {
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
	return true
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

// notify wakes whoever owns the stream: the fan-out while it is direct,
// its goroutine otherwise. It is the wake of the stream's subscriptions,
// its timers and its context, and never blocks.
func (s *stream) notify() {
	if !s.direct.Load() {
		s.wakeWriter()
		return
	}
	for {
		switch s.turn.Load() {
		case turnIdle:
			if s.turn.CompareAndSwap(turnIdle, turnQueued) {
				s.fan.push(s)
				return
			}
		case turnBusy:
			if s.turn.CompareAndSwap(turnBusy, turnAgain) {
				return
			}
		default: // queued, or due to be: its next turn finds what is new
			return
		}
	}
}

// The states of stream.turn.
const (
	turnIdle   = iota // not on the run queue
	turnQueued        // on the run queue (or taken off it, its turn about to start)
	turnBusy          // a worker is serving its turn
	turnAgain         // woken during its turn: it goes back on the queue after it
)

// wakeWriter wakes the stream's goroutine; it never blocks.
func (s *stream) wakeWriter() {
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
//
// Frames not yet written are dropped, but for the rest of one already
// written in part.
func (s *stream) endExpired() {
	s.buf = s.buf[:s.held]
	s.sent = 0
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
	s.resetBuf()
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

// resetBuf empties buf once it is written.
func (s *stream) resetBuf() {
	if cap(s.buf) > 64<<10 {
		s.buf = nil // a burst's buffer is not kept for an idle stream
	} else {
		s.buf = s.buf[:0]
	}
	s.held = 0
}
