// Package groupcommit is how both stores commit concurrent publishes
// together: each Publish hands its request to one writer goroutine and waits,
// and the writer commits every request waiting at that moment in one
// transaction. A commit costs about the same for one message as for many, so
// throughput grows with the number of publishers while no publish waits for
// one that has not begun.
//
// A batch publish (store.Store.PublishBatch) travels as a unit: its calls
// reach the writer in one hand-off, always in one batch and next to each
// other in request order, and its caller is answered once, when the writer
// has answered every call of the unit. Fail marks a whole unit failed.
//
// The package owns the hand-off only (queueing, batching, callers that give
// up); what a batch's transaction does is the store's, in the commit function
// it gives Run.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/internal/store"
)

// Call is one publish on its way through a Queue. The writer owns it from
// the moment Run hands it over until it calls Answer.
type Call struct {
	Ctx context.Context
	Req store.PublishRequest
	// Group and ID are the writer's scratch space: typically the index of
	// the call's topic in its batch, and the id it gave the message.
	Group int
	ID    uint64
	// Replay is the writer's mark for a call that repeats an earlier
	// publish (store.PublishRequest.IdempotencyKey): Msg is, or will be,
	// that publish's message, and nothing is written for the call.
	Replay bool
	// Msg or Err is the answer.
	Msg store.Message
	Err error
	// done receives one value once the call is answered (for a unit: the
	// unit's first call, once all are). It has room for it, so the writer
	// never waits for the caller.
	done chan struct{}
	// unit is the batch publish the call belongs to, nil for a single
	// publish; index is the call's place in it.
	unit  *unit
	index int
}

// unit is the calls of one batch publish.
type unit struct {
	calls []*Call
	// left counts the calls not yet answered. Only the writer touches it.
	left int
}

// Answer hands Msg or Err to the caller. The writer calls it once per call
// and must not touch the call afterwards: the caller reuses it. The caller
// of a batch publish wakes when the last call of its unit is answered.
func (c *Call) Answer() {
	u := c.unit
	if u == nil {
		c.done <- struct{}{}
		return
	}
	if u.left--; u.left == 0 {
		u.calls[0].done <- struct{}{}
	}
}

// Unit returns the calls that commit or fail together with c, in request
// order: those of its batch publish, or c alone. The writer must write all
// of them or none.
func (c *Call) Unit() []*Call {
	if c.unit == nil {
		return []*Call{c}
	}
	return c.unit.calls
}

// Batched reports whether c is part of a batch publish of more than one
// call, whose failure (Fail) fails the others.
func (c *Call) Batched() bool { return c.unit != nil && len(c.unit.calls) > 1 }

// Fail sets err as the answer of c's whole unit, so that none of it is
// written: for a single publish, err itself; for a batch publish, a
// *store.ItemError naming c, unless the unit already failed because of an
// earlier call of it. It does not Answer.
func (c *Call) Fail(err error) {
	if c.unit == nil {
		c.Err = err
		return
	}
	var prev *store.ItemError
	if errors.As(c.unit.calls[0].Err, &prev) && prev.Index <= c.index {
		return
	}
	ie := &store.ItemError{Index: c.index, Err: err}
	for _, o := range c.unit.calls {
		o.Err = ie
	}
}

// Failed reports whether c's unit failed as a whole through Fail (a batch
// publish of more than one call) and must not be written.
func (c *Call) Failed() bool {
	if !c.Batched() {
		return false
	}
	var ie *store.ItemError
	return errors.As(c.Err, &ie)
}

// Options bounds a batch.
type Options struct {
	// MaxBatch is the most calls one batch holds; it must be positive.
	MaxBatch int
	// MaxBatchBytes stops adding calls once their bodies hold this many
	// bytes (a single larger body still goes alone). 0 means no bound.
	MaxBatchBytes int
}

// Queue hands publishes from callers to one writer.
//
// Callers append to a list under a mutex and wait for their answer alone;
// the writer takes what the list holds when it starts a batch. A caller
// therefore sleeps once per publish (until its answer), not twice as it
// would on an unbuffered channel (once until the writer takes the call,
// once until the answer): on a busy server each of those sleeps is a
// thread hand-off, and they were a large part of a publish's cost.
type Queue struct {
	opts Options
	mu   sync.Mutex
	// pending holds the calls (for a batch publish, its unit's first call)
	// that wait for a writer, in arrival order. Guarded by mu.
	pending []*Call
	// closed is set, under mu, once a writer saw closing: nothing is added
	// to pending after it.
	closed bool
	// wake has room for one signal: a caller that adds to pending leaves
	// one there for a writer waiting for work.
	wake chan struct{}
	// sending counts the callers about to add a call: the writer takes
	// them into its batch before it commits.
	sending atomic.Int64
	// pool recycles Calls, so a publish allocates little.
	pool sync.Pool
	// closing ends Run (after its current batch) and refuses new calls.
	closing <-chan struct{}
}

// New returns a queue that stops when closing is closed.
func New(closing <-chan struct{}, opts Options) *Queue {
	q := &Queue{opts: opts, wake: make(chan struct{}, 1), closing: closing}
	q.pool.New = func() any { return &Call{done: make(chan struct{}, 1)} }
	return q
}

// Submit hands req to the writer and waits for the answer. A request whose
// ctx ends before the writer takes it is not written and gets ctx.Err();
// once taken, it is written and Submit waits for the outcome. After closing,
// it gets store.ErrClosed.
func (q *Queue) Submit(ctx context.Context, req store.PublishRequest) (store.Message, error) {
	c := q.pool.Get().(*Call)
	c.Ctx, c.Req = ctx, req
	if err := q.enqueue(c); err != nil {
		q.recycle(c)
		return store.Message{}, err
	}
	msg, err := c.Msg, c.Err
	q.recycle(c)
	return msg, err
}

// SubmitBatch hands reqs to the writer as one unit and waits for the
// answer: a message per request, in order, or the error that failed the
// unit. Context and closing work as for Submit. An empty reqs returns at
// once.
func (q *Queue) SubmitBatch(ctx context.Context, reqs []store.PublishRequest) ([]store.Message, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	// Not pooled: a unit is as large as its request, and one allocation
	// holds all of its calls.
	calls := make([]Call, len(reqs))
	u := &unit{calls: make([]*Call, len(reqs)), left: len(reqs)}
	for i := range calls {
		c := &calls[i]
		c.Ctx, c.Req, c.unit, c.index = ctx, reqs[i], u, i
		u.calls[i] = c
	}
	head := u.calls[0]
	head.done = make(chan struct{}, 1)
	if err := q.enqueue(head); err != nil {
		return nil, err
	}
	msgs := make([]store.Message, len(reqs))
	for i, c := range u.calls {
		if c.Err != nil {
			return nil, c.Err
		}
		msgs[i] = c.Msg
	}
	return msgs, nil
}

// enqueue adds c (a unit's first call) to pending and waits until the
// writer has answered it. It returns an error, and c is not written, when
// c.Ctx ends before a writer takes c or when the queue is closed.
func (q *Queue) enqueue(c *Call) error {
	if err := c.Ctx.Err(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	q.sending.Add(1)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.sending.Add(-1)
		return fmt.Errorf("publish: %w", store.ErrClosed)
	}
	q.pending = append(q.pending, c)
	q.mu.Unlock()
	q.sending.Add(-1)
	select {
	case q.wake <- struct{}{}:
	default: // a signal is already waiting
	}
	select {
	case <-c.done:
		return nil
	case <-c.Ctx.Done():
	}
	// Given up: withdrawn if no writer has taken it yet, else its outcome
	// is awaited, as the writer writes what it took.
	q.mu.Lock()
	if i := slices.Index(q.pending, c); i >= 0 {
		q.pending = slices.Delete(q.pending, i, i+1)
		q.mu.Unlock()
		return fmt.Errorf("publish: %w", c.Ctx.Err())
	}
	q.mu.Unlock()
	<-c.done
	return nil
}

// recycle puts c back in the pool, with no references to the call it held.
func (q *Queue) recycle(c *Call) {
	done := c.done
	*c = Call{done: done}
	q.pool.Put(c)
}

// Run is the writer loop: it takes batches of calls and gives those whose
// callers still wait to commit, which must Answer every one of them. It
// returns once closing is closed, after its current batch; calls still
// waiting then get store.ErrClosed.
func (q *Queue) Run(commit func(live []*Call)) {
	q.RunTurns(nil, func(live []*Call, _ func()) { commit(live) })
}

// RunTurns is Run for one of several writers that share q and take turns
// to gather a batch, so that they do not split the waiting calls into
// small batches that then wait for each other: turns holds one token
// among them (a channel with room for one, filled once), and a writer
// takes a batch only while it holds it. commit gets pass, which hands the
// turn to the next writer; the writer calls it once its batch no longer
// keeps the next one from starting (its locks are held, say). Run passes
// the turn itself after commit, if commit did not. A nil turns runs
// without turns.
func (q *Queue) RunTurns(turns chan struct{}, commit func(live []*Call, pass func())) {
	batch := make([]*Call, 0, q.opts.MaxBatch)
	live := make([]*Call, 0, q.opts.MaxBatch)
	held := false
	pass := func() {
		if held {
			held = false
			turns <- struct{}{}
		}
	}
	defer q.shut()
	for {
		if turns != nil {
			select {
			case <-turns:
				held = true
			case <-q.closing:
				return
			}
		}
		batch = q.gather(batch[:0])
		if batch == nil {
			pass()
			return
		}
		// A call whose caller gave up before the writer took it is not
		// written. A unit's calls share one context, asked once for all.
		live = live[:0]
		for i := 0; i < len(batch); {
			n := 1
			if u := batch[i].unit; u != nil {
				n = len(u.calls)
			}
			if err := batch[i].Ctx.Err(); err != nil {
				for _, c := range batch[i : i+n] {
					c.Err = fmt.Errorf("publish: %w", err)
					c.Answer()
				}
			} else {
				live = append(live, batch[i:i+n]...)
			}
			i += n
		}
		if len(live) > 0 {
			commit(live, pass)
		}
		pass()
		clear(batch)
		clear(live)
	}
}

// shut refuses new calls and answers those still waiting with
// store.ErrClosed.
func (q *Queue) shut() {
	q.mu.Lock()
	q.closed = true
	left := q.pending
	q.pending = nil
	q.mu.Unlock()
	for _, c := range left {
		for _, u := range c.Unit() {
			u.Err = fmt.Errorf("publish: %w", store.ErrClosed)
			u.Answer()
		}
	}
}

// gather waits for calls and appends a batch of them to batch; it returns
// nil once closing is closed. It takes what waits, yields once, so that
// publishers woken by the last batch can run, then takes calls for as long
// as a Submit is about to add one, within the batch bounds. It never waits
// for a call that has not begun: the calls that arrive while a batch
// commits make the next batch.
//
// A unit (a batch publish) comes whole, whatever the bounds: they only stop
// further calls from joining.
func (q *Queue) gather(batch []*Call) []*Call {
	size := 0
	for {
		// Calls may wait without a signal: the last batch was full.
		if batch, size = q.take(batch, size); len(batch) > 0 {
			break
		}
		select {
		case <-q.wake:
		case <-q.closing:
			return nil
		}
	}
	runtime.Gosched()
	for q.room(len(batch), size) {
		n := len(batch)
		if batch, size = q.take(batch, size); len(batch) > n {
			continue
		}
		if q.sending.Load() == 0 {
			break
		}
		runtime.Gosched()
	}
	return batch
}

// room reports whether a batch of n calls holding size bytes of bodies may
// take another call.
func (q *Queue) room(n, size int) bool {
	return n < q.opts.MaxBatch && (q.opts.MaxBatchBytes == 0 || size < q.opts.MaxBatchBytes)
}

// take moves waiting calls to batch, within the bounds, and adds their
// bodies to size.
func (q *Queue) take(batch []*Call, size int) ([]*Call, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for ; i < len(q.pending) && q.room(len(batch), size); i++ {
		batch, size = appendUnit(batch, q.pending[i], size)
	}
	if i > 0 {
		n := copy(q.pending, q.pending[i:])
		clear(q.pending[n:])
		q.pending = q.pending[:n]
	}
	return batch, size
}

// appendUnit appends the unit of c, which the writer just took, to batch
// and adds its bodies to size.
func appendUnit(batch []*Call, c *Call, size int) ([]*Call, int) {
	if c.unit == nil {
		return append(batch, c), size + len(c.Req.Body)
	}
	for _, u := range c.unit.calls {
		batch = append(batch, u)
		size += len(u.Req.Body)
	}
	return batch, size
}
