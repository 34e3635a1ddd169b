package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
)

// Defaults of DispatcherOptions fields left at zero.
const (
	DefaultConcurrency  = 16
	DefaultPollInterval = 500 * time.Millisecond
	// DefaultLeaseMargin is how much longer than an attempt's timeout a
	// claim's lease lasts by default: time to settle after the attempt.
	DefaultLeaseMargin = 30 * time.Second
	// settleTimeout bounds recording one outcome.
	settleTimeout = 30 * time.Second
)

// Queue is the part of store.Outbox the dispatcher works from.
type Queue interface {
	// Claim leases up to limit due deliveries until now+lease, counting an
	// attempt for each (see store.Outbox).
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error)
	// Settle records the outcome of an attempt; an outcome for a lease that
	// ran out gives store.ErrConflict.
	Settle(ctx context.Context, o store.Outcome) error
}

// DispatcherOptions configures a Dispatcher. Zero values mean the documented
// default.
type DispatcherOptions struct {
	// Queue is where deliveries come from and outcomes go. Required.
	Queue Queue
	// Guard refuses connections to special-purpose addresses. Nil means
	// NewGuard(nil): every one of them is refused.
	Guard *Guard
	// Timeout bounds each attempt. 0 means DefaultTimeout.
	Timeout time.Duration
	// Lease is how long a claimed delivery is this dispatcher's before any
	// dispatcher may claim it again; it must be longer than Timeout, so a
	// live attempt is never run twice at once. 0 means Timeout plus
	// DefaultLeaseMargin.
	Lease time.Duration
	// Concurrency is how many attempts run at once; each holds one claimed
	// delivery. 0 means DefaultConcurrency.
	Concurrency int
	// PollInterval is how often the queue is asked for due deliveries when
	// nothing wakes the dispatcher sooner. 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Retries are the delays before each retry (see ParseRetries). Nil
	// means DefaultRetries().
	Retries []time.Duration
	// Jitter spreads each retry delay by up to this fraction either way.
	// 0 means DefaultJitter; negative means none.
	Jitter float64
	// Metrics receives the webhook counters. Nil means metrics.New(),
	// unexported.
	Metrics *metrics.Metrics
	// Logger logs dead letters, lost leases and queue failures. Nil
	// discards.
	Logger *slog.Logger
	// SettledFunc, if not nil, is called after each outcome is recorded
	// (or failed to be, with the error). It must not block; tests use it
	// to see attempts end.
	SettledFunc func(store.Outcome, error)
	// AttemptedFunc, if not nil, is called with the app of each attempt
	// whose outcome was recorded, and whether the receiver took it. It must
	// not block (the dashboard's per-app counts).
	AttemptedFunc func(appID string, delivered bool)
}

// Dispatcher delivers due deliveries: it claims them from the queue, makes
// one attempt at each (at most Concurrency at once), and settles each
// outcome: delivered, retried later on the schedule, or dead.
//
// It runs apart from publishing and streaming: a slow or dead receiver
// holds one of its slots for at most Timeout and nothing else. Start runs
// it; Close stops it. It is safe for concurrent use.
type Dispatcher struct {
	queue       Queue
	sender      *Sender
	sched       schedule
	lease       time.Duration
	concurrency int
	poll        time.Duration
	metrics     *metrics.Metrics
	log         *slog.Logger
	settled     func(store.Outcome, error)
	attempted   func(appID string, delivered bool)

	wake chan struct{} // buffered 1: Wake never blocks

	startOnce sync.Once
	closeOnce sync.Once
	// Set by Start, read by Close after startOnce (which orders them).
	started      bool
	stopClaiming context.CancelFunc // ends the claim loop
	abandon      context.CancelFunc // cancels attempts in flight
	attemptCtx   context.Context
	loop         sync.WaitGroup // the claim loop
	workers      sync.WaitGroup // the attempts
}

// NewDispatcher returns a dispatcher; Start runs it.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Queue == nil {
		return nil, errors.New("webhook: a dispatcher needs a queue")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Lease == 0 {
		opts.Lease = opts.Timeout + DefaultLeaseMargin
	}
	if opts.Lease <= opts.Timeout {
		return nil, fmt.Errorf("webhook: the lease (%s) must be longer than the attempt timeout (%s)", opts.Lease, opts.Timeout)
	}
	if opts.Concurrency < 0 || opts.PollInterval < 0 {
		return nil, errors.New("webhook: negative concurrency or poll interval")
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Retries == nil {
		opts.Retries = DefaultRetries()
	}
	for _, r := range opts.Retries {
		if r <= 0 {
			return nil, fmt.Errorf("webhook: retry delay %s is not positive", r)
		}
	}
	switch {
	case opts.Jitter == 0:
		opts.Jitter = DefaultJitter
	case opts.Jitter < 0:
		opts.Jitter = 0
	case opts.Jitter >= 1:
		return nil, fmt.Errorf("webhook: jitter %v must be below 1", opts.Jitter)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		queue:       opts.Queue,
		sender:      NewSender(SenderOptions{Guard: opts.Guard, Timeout: opts.Timeout, MaxIdleConnsPerHost: opts.Concurrency}),
		sched:       schedule{retries: append([]time.Duration(nil), opts.Retries...), jitter: opts.Jitter},
		lease:       opts.Lease,
		concurrency: opts.Concurrency,
		poll:        opts.PollInterval,
		metrics:     opts.Metrics,
		log:         opts.Logger,
		settled:     opts.SettledFunc,
		attempted:   opts.AttemptedFunc,
		wake:        make(chan struct{}, 1),
	}, nil
}

// Wake asks the dispatcher to look for due deliveries now rather than at
// its next poll (a publish or a redrive just queued some). It never blocks;
// wake-ups close together are folded into one look.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start runs the dispatcher until Close, or until ctx ends, which is like
// Close with an expired context: attempts in flight are abandoned. Calls
// after the first do nothing.
func (d *Dispatcher) Start(ctx context.Context) {
	d.startOnce.Do(func() {
		d.started = true
		d.attemptCtx, d.abandon = context.WithCancel(ctx)
		var loopCtx context.Context
		loopCtx, d.stopClaiming = context.WithCancel(d.attemptCtx)
		d.loop.Go(func() { d.run(loopCtx) })
	})
}

// Close stops the dispatcher: it claims nothing more, waits for the
// attempts in flight to end and be settled, then releases its connections.
// When ctx ends first, the attempts still in flight are abandoned: they are
// not settled, and their deliveries are claimed again, by this node after a
// restart or by another, once their leases run out. Close returns once every
// goroutine of the dispatcher has ended; calls after the first do nothing.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.startOnce.Do(func() {}) // a dispatcher closed before Start never starts
		if d.started {
			d.stopClaiming()
			d.loop.Wait() // no attempt starts after this
			drained := make(chan struct{})
			var waiter sync.WaitGroup
			defer waiter.Wait()
			waiter.Go(func() { d.workers.Wait(); close(drained) })
			select {
			case <-drained:
			case <-ctx.Done():
				d.log.Warn("webhook dispatcher stopped with attempts in flight; their leases will run out and they will be retried",
					"lease", d.lease)
				d.abandon()
				<-drained
			}
			d.abandon()
		}
		d.sender.Close()
	})
	return nil
}

// run claims due deliveries and hands each to an attempt goroutine, never
// holding more than concurrency at once, until ctx ends.
func (d *Dispatcher) run(ctx context.Context) {
	// done carries, from each attempt as it ends, when its delivery is due
	// again (zero when it is not): this node then looks at that time
	// rather than at its next poll.
	done := make(chan time.Time, d.concurrency)
	var (
		inflight  int
		next      = time.Now() // when to claim next
		lastClaim time.Time
		soonest   time.Time // earliest retry this node scheduled, zero if none
		backlog   bool      // the last claim was full: more may be due
		failing   bool      // the last claim failed (logged once per episode)
		timer     = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	minGap := min(d.poll, 20*time.Millisecond) // between claims caused by Wake
	// With a backlog, claim again once a quarter of the slots are free
	// rather than at each one: a claim is a write transaction, and one per
	// delivery would double the store's work.
	refill := max(1, d.concurrency/4)
	for {
		now := time.Now()
		if inflight < d.concurrency && !now.Before(next) {
			free := d.concurrency - inflight
			ds, err := d.queue.Claim(ctx, now, d.lease, free)
			lastClaim, next = now, now.Add(d.poll)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				if !failing {
					d.log.Error("webhook dispatcher: claim deliveries", "err", err)
				}
				failing = true
			default:
				if failing {
					d.log.Info("webhook dispatcher: claiming works again")
				}
				failing = false
			}
			if !soonest.IsZero() && !soonest.After(now) {
				soonest = time.Time{} // that retry was due, so this claim saw it
			}
			backlog = len(ds) == free
			for _, del := range ds {
				inflight++
				d.metrics.WebhookInflight.Inc()
				d.workers.Go(func() {
					defer d.metrics.WebhookInflight.Dec()
					done <- d.attempt(&del)
				})
			}
		}
		if !soonest.IsZero() && soonest.Before(next) {
			next = soonest
		}
		var tick <-chan time.Time
		if inflight < d.concurrency {
			timer.Reset(max(time.Until(next), 0))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			if w := lastClaim.Add(minGap); w.Before(next) {
				next = w
			}
		case <-tick:
		case due := <-done:
			inflight--
			if backlog && (d.concurrency-inflight >= refill || inflight == 0) {
				next = time.Now()
			}
			if !due.IsZero() && (soonest.IsZero() || due.Before(soonest)) {
				soonest = due
			}
		}
	}
}

// attempt makes one attempt at a claimed delivery and settles it. It
// returns when the delivery is due again, or zero.
func (d *Dispatcher) attempt(del *store.Delivery) time.Time {
	res := d.sender.Send(d.attemptCtx, del)
	if d.attemptCtx.Err() != nil {
		return time.Time{} // abandoned: the lease runs out and someone retries
	}
	d.metrics.WebhookAttempts.Inc()
	d.metrics.WebhookAttemptDuration.Observe(res.Duration.Seconds())
	o := d.outcome(del, res, time.Now())
	ctx, cancel := context.WithTimeout(d.attemptCtx, settleTimeout)
	err := d.queue.Settle(ctx, o)
	cancel()
	if d.settled != nil {
		d.settled(o, err)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		// The lease ran out before the outcome was recorded, so another
		// attempt may be running: the receiver may see this delivery twice,
		// which at-least-once allows. Whatever that attempt settles stands.
		d.metrics.WebhookLeaseLost.Inc()
		d.log.Warn("webhook attempt outlived its lease; its outcome was dropped", "delivery", del.ID, "lease_until", del.LeaseUntil)
		return time.Time{}
	case err != nil:
		if d.attemptCtx.Err() == nil {
			d.log.Error("webhook dispatcher: settle delivery", "delivery", del.ID, "err", err)
		}
		return time.Time{}
	}
	if d.attempted != nil {
		d.attempted(del.AppID, o.State == store.DeliveryDelivered)
	}
	switch o.State {
	case store.DeliveryDelivered:
		d.metrics.WebhookDelivered.Inc()
	case store.DeliveryDead:
		d.metrics.WebhookFailed.Inc()
		d.metrics.WebhookDead.Inc()
		d.log.Warn("webhook delivery is dead", "delivery", del.ID, "trigger", del.TriggerID, "app", del.AppID,
			"topic", del.Topic, "attempts", del.Attempts, "trigger_disabled", o.DisableTrigger, "last_error", o.Error)
	default:
		d.metrics.WebhookFailed.Inc()
		d.log.Debug("webhook attempt failed", "delivery", del.ID, "attempt", del.Attempts, "next_at", o.NextAt, "err", o.Error)
		return o.NextAt
	}
	return time.Time{}
}

// outcome decides what becomes of a delivery after an attempt: 2xx
// delivers it; 410 Gone kills it and disables its trigger; anything else
// (another 4xx, 429, 5xx, a redirect, a timeout, a failed or refused
// connection) retries it on the schedule, or kills it after the last
// attempt.
func (d *Dispatcher) outcome(del *store.Delivery, res Result, now time.Time) store.Outcome {
	o := store.Outcome{DeliveryID: del.ID, LeaseUntil: del.LeaseUntil, Status: res.Status, At: now, Duration: res.Duration}
	switch {
	case res.Delivered():
		o.State = store.DeliveryDelivered
	case res.Status == http.StatusGone:
		o.State, o.DisableTrigger = store.DeliveryDead, true
		o.Error = res.Err.Error() + " (the receiver is gone: trigger disabled)"
	default:
		o.Error = res.Err.Error()
		if delay, ok := d.sched.next(del.Attempts, res.RetryAfter); ok {
			o.State, o.NextAt = store.DeliveryPending, now.Add(delay)
		} else {
			o.State = store.DeliveryDead
		}
	}
	return o
}
