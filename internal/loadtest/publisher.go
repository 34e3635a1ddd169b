package loadtest

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/client"
)

// publishPlan is what the publishers do: from start, for warmup and then
// the measured window, at rate messages per second in total (0: as fast as
// they can), round-robin over topics, each message through the node route
// names (clients has one client per node).
type publishPlan struct {
	clients    []*client.Client
	bases      []*url.URL // the nodes' URLs, as clients has them
	key        string     // the key clients publish with
	route      nodeRoute
	app        string
	topics     []string
	rate       float64
	publishers int
	size       int
	batch      int
	start      time.Time
	warmup     time.Duration
	duration   time.Duration
}

// publishResult is what the publishers did inside the measured window.
type publishResult struct {
	ledger   *publishLedger
	accepted atomic.Uint64 // messages, inside the window
	requests atomic.Uint64 // requests that carried them
	failed   atomic.Uint64 // messages, inside the window
	latency  latencyHistogram

	mu       sync.Mutex
	firstErr error // guarded by mu; the first publish error in the window
}

func (r *publishResult) fail(err error, messages int) {
	r.failed.Add(uint64(messages))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstErr == nil {
		r.firstErr = err
	}
}

// FirstError returns the first publish error inside the window, or nil.
func (r *publishResult) FirstError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstErr
}

// scheduleTick is how often the paced schedule hands out the jobs that have
// come due: fine enough that 100 msg/s goes out one at a time, coarse
// enough not to spin.
const scheduleTick = time.Millisecond

// dueJobs is how many jobs a schedule of rate per second has made due after
// elapsed.
func dueJobs(elapsed time.Duration, rate float64) uint64 {
	if elapsed <= 0 {
		return 0
	}
	return uint64(elapsed.Seconds() * rate)
}

// runPublishers publishes until the plan ends and returns once every
// publisher has. Each publisher sends one request at a time and waits for
// its 202 (the commit) before the next. With a rate, a scheduler goroutine
// hands out job numbers as they come due on a fixed schedule from
// plan.start; when the publishers fall behind, the jobs queue and go out as
// fast as they can be, so the achieved rate shows the shortfall. With rate 0
// each publisher takes the next job number as soon as it is free.
func runPublishers(ctx context.Context, plan publishPlan, window *measureWindow) *publishResult {
	res := &publishResult{ledger: &publishLedger{topics: len(plan.topics)}}
	// stopCtx ends the taking of new jobs; a request already sent is waited
	// for under ctx, or its message would arrive unaccounted for.
	stopCtx, cancel := context.WithDeadline(ctx, plan.start.Add(plan.warmup+plan.duration))
	defer cancel()

	var (
		wg   sync.WaitGroup
		next func() (uint64, bool)
	)
	if plan.rate > 0 {
		jobs := make(chan uint64, plan.publishers)
		wg.Go(func() {
			defer close(jobs)
			schedulePublishes(stopCtx, plan.start, plan.rate, jobs)
		})
		next = func() (uint64, bool) {
			n, ok := <-jobs
			return n, ok
		}
	} else {
		var counter atomic.Uint64
		next = func() (uint64, bool) {
			if stopCtx.Err() != nil {
				return 0, false
			}
			return counter.Add(1) - 1, true
		}
	}
	for range plan.publishers {
		wg.Go(func() { publishLoop(ctx, stopCtx, plan, window, next, res) })
	}
	wg.Wait()
	return res
}

// schedulePublishes sends job numbers 0, 1, 2, … on jobs as they come due, at rate
// per second from start, until ctx ends.
func schedulePublishes(ctx context.Context, start time.Time, rate float64, jobs chan<- uint64) {
	t := time.NewTicker(scheduleTick)
	defer t.Stop()
	var sent uint64
	for {
		for due := dueJobs(time.Since(start), rate); sent < due; sent++ {
			select {
			case jobs <- sent:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// publishLoop is one publisher: take a job (or plan.batch of them), publish
// it, record the outcome.
func publishLoop(ctx, stopCtx context.Context, plan publishPlan, window *measureWindow, next func() (uint64, bool), res *publishResult) {
	var (
		jobs []uint64
		req  publishRequest
	)
	senders := newPublishSenders(plan)
	defer senders.close()
	// A request in flight when ctx ends is ended with it.
	defer context.AfterFunc(ctx, senders.close)()
	for {
		jobs = takeJobs(stopCtx, jobs[:0], max(plan.batch, 1), next)
		if len(jobs) == 0 {
			return
		}
		sent := time.Now()
		msgs, firstSeq := req.build(plan, jobs, sent)
		s := senders.senders[plan.route.publisherNode(firstSeq)]
		var err error
		if plan.batch <= 1 {
			err = s.publish(ctx, plan.app, msgs[0].Topic, msgs[0].Message)
		} else {
			err = s.publishBatch(ctx, plan.app, msgs)
		}
		res.record(window, jobs, sent, time.Since(sent), err)
	}
}

// takeJobs appends up to n jobs from next to jobs, fewer when next runs
// out or stopCtx ends.
func takeJobs(stopCtx context.Context, jobs []uint64, n int, next func() (uint64, bool)) []uint64 {
	for len(jobs) < n {
		j, ok := next()
		if !ok || stopCtx.Err() != nil {
			break
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// publishRequest is one publisher's buffers for the messages of a
// request, reused from request to request.
type publishRequest struct {
	bufs [][]byte
	msgs []client.BatchMessage
}

// build makes the messages of jobs, sent at sent, and returns them with
// the first one's seq, which picks the node they go through.
func (q *publishRequest) build(plan publishPlan, jobs []uint64, sent time.Time) (msgs []client.BatchMessage, firstSeq uint64) {
	for len(q.bufs) < len(jobs) {
		q.bufs = append(q.bufs, nil)
	}
	q.msgs = q.msgs[:0]
	for i, n := range jobs {
		ti, seq := jobTopicSeq(n, len(plan.topics))
		if i == 0 {
			firstSeq = seq
		}
		q.bufs[i] = buildPayload(q.bufs[i][:0], seq, sent.UnixNano(), plan.size)
		q.msgs = append(q.msgs, client.BatchMessage{Topic: plan.topics[ti], Message: q.bufs[i]})
	}
	return q.msgs, firstSeq
}

// record counts the outcome of one request carrying jobs, sent at sent and
// answered after took with err, and notes each job's outcome in the
// ledger. Each message is measured or not on its own (window.Counts); the
// request, and its latency, count when its first message does.
func (r *publishResult) record(window *measureWindow, jobs []uint64, sent time.Time, took time.Duration, err error) {
	var measured int
	for _, n := range jobs {
		if window.Counts(n, sent.UnixNano()) {
			measured++
		}
	}
	switch {
	case err != nil:
		if measured > 0 {
			r.fail(err, measured)
		}
	case measured > 0:
		r.accepted.Add(uint64(measured))
		if window.Counts(jobs[0], sent.UnixNano()) {
			r.requests.Add(1)
			r.latency.Record(took)
		}
	}
	for _, n := range jobs {
		state := jobAccepted
		switch {
		case err != nil:
			state = jobFailed
		case window.Counts(n, sent.UnixNano()):
			state = jobAcceptedMeasured
		}
		r.ledger.Set(n, state)
	}
}
