// Package groupcommit is how both stores commit concurrent publishes
// together: each Publish hands its request to one writer goroutine and waits,
// and the writer commits every request waiting at that moment in one
// transaction. A commit costs about the same for one message as for many, so
// throughput grows with the number of publishers while no publish waits for
// one that has not begun.
//
// The package owns the hand-off only (queueing, batching, callers that give
// up); what a batch's transaction does is the store's, in the commit function
// it gives Run.
package groupcommit

import (
	"context"
	"fmt"
	"runtime"
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
	// done receives one value once the call is answered. It has room for
	// it, so the writer never waits for the caller.
	done chan struct{}
}

// Answer hands Msg or Err to the caller. The writer calls it once per call
// and must not touch the call afterwards: the caller reuses it.
func (c *Call) Answer() { c.done <- struct{}{} }

// Options bounds a batch.
type Options struct {
	// MaxBatch is the most calls one batch holds; it must be positive.
	MaxBatch int
	// MaxBatchBytes stops adding calls once their bodies hold this many
	// bytes (a single larger body still goes alone). 0 means no bound.
	MaxBatchBytes int
}

// Queue hands publishes from callers to one writer.
type Queue struct {
	opts Options
	// calls is unbuffered: a send completes when the writer has taken the
	// call.
	calls chan *Call
	// sending counts the calls about to be sent: the writer takes them
	// into its batch before it commits.
	sending atomic.Int64
	// pool recycles Calls, so a publish allocates little.
	pool sync.Pool
	// closing ends Run (after its current batch) and refuses new calls.
	closing <-chan struct{}
}

// New returns a queue that stops when closing is closed.
func New(closing <-chan struct{}, opts Options) *Queue {
	q := &Queue{opts: opts, calls: make(chan *Call), closing: closing}
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
	q.sending.Add(1)
	select {
	case q.calls <- c:
		// The writer took c and counted it out of sending.
	case <-ctx.Done():
		q.sending.Add(-1)
		q.recycle(c)
		return store.Message{}, fmt.Errorf("publish: %w", ctx.Err())
	case <-q.closing:
		q.sending.Add(-1)
		q.recycle(c)
		return store.Message{}, fmt.Errorf("publish: %w", store.ErrClosed)
	}
	<-c.done
	msg, err := c.Msg, c.Err
	q.recycle(c)
	return msg, err
}

// recycle puts c back in the pool, with no references to the call it held.
func (q *Queue) recycle(c *Call) {
	done := c.done
	*c = Call{done: done}
	q.pool.Put(c)
}

// Run is the writer loop: it takes batches of calls and gives those whose
// callers still wait to commit, which must Answer every one of them. It
// returns once closing is closed, after its current batch.
func (q *Queue) Run(commit func(live []*Call)) {
	batch := make([]*Call, 0, q.opts.MaxBatch)
	live := make([]*Call, 0, q.opts.MaxBatch)
	for {
		var first *Call
		select {
		case first = <-q.calls:
			q.sending.Add(-1)
		case <-q.closing:
			return
		}
		batch = q.gather(batch[:0], first)
		// A call whose caller gave up before the writer took it is not
		// written.
		live = live[:0]
		for _, c := range batch {
			if err := c.Ctx.Err(); err != nil {
				c.Err = fmt.Errorf("publish: %w", err)
				c.Answer()
				continue
			}
			live = append(live, c)
		}
		if len(live) > 0 {
			commit(live)
		}
		clear(batch)
		clear(live)
	}
}

// gather appends first and the calls that come right after it to batch. It
// yields once, so that publishers woken by the last batch can run, then
// takes calls for as long as a Submit is about to send one, within the
// batch bounds. It never waits for a call that has not begun: the calls that
// arrive while a batch commits make the next batch.
func (q *Queue) gather(batch []*Call, first *Call) []*Call {
	batch = append(batch, first)
	size := len(first.Req.Body)
	runtime.Gosched()
	for len(batch) < q.opts.MaxBatch && (q.opts.MaxBatchBytes == 0 || size < q.opts.MaxBatchBytes) {
		select {
		case c := <-q.calls:
			q.sending.Add(-1)
			batch = append(batch, c)
			size += len(c.Req.Body)
			continue
		default:
		}
		if q.sending.Load() == 0 {
			break
		}
		runtime.Gosched()
	}
	return batch
}
