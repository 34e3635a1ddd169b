package limit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/internal/store"
)

// The kinds of per-app limit, as named in errors and metrics.
const (
	KindStreams     = "streams"
	KindPublishRate = "publish_rate"
	KindTopics      = "topics"
	KindTriggers    = "triggers"
)

// Refused is a request refused because its app is at a limit.
type Refused struct {
	// Kind is KindStreams, KindPublishRate, KindTopics or KindTriggers.
	Kind string
	// Max is the limit in force (per second for KindPublishRate).
	Max float64
	// RetryAfter is when trying again can succeed: for the rate, when the
	// bucket holds a token again; for the others, a guess.
	RetryAfter time.Duration
}

func (e *Refused) Error() string {
	switch e.Kind {
	case KindPublishRate:
		return fmt.Sprintf("this app's publish rate limit (%g per second) is reached", e.Max)
	default:
		return fmt.Sprintf("this app's %s limit (%g) is reached", e.Kind, e.Max)
	}
}

// heldRetry is the Retry-After for a limit on what is held (streams,
// topics): it lifts when the app lets go of something, which no one here
// can predict.
const heldRetry = 10 * time.Second

// DefaultCacheTTL is how long an app's limits are used without reading
// them again, when AppsOptions.CacheTTL is 0: a change on another node
// takes effect here within it.
const DefaultCacheTTL = 5 * time.Second

// AppsOptions configures Apps.
type AppsOptions struct {
	// Defaults are the limits of an app that has none of its own (and of
	// each field an app leaves at 0). For each field, 0 or less means
	// unlimited.
	Defaults store.AppLimits
	// LookupFunc reads an app's own limits.
	LookupFunc func(ctx context.Context, appID string) (store.AppLimits, error)
	// CacheTTL is how long looked-up limits are used. 0 means
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// RefusedFunc, if not nil, is called with the kind of each refusal,
	// for metrics.
	RefusedFunc func(kind string)
}

// Apps enforces per-app limits on one node. It is safe for concurrent use.
type Apps struct {
	opts AppsOptions

	streams Counter

	mu      sync.Mutex
	cache   map[string]cached        // guarded by mu; by app id
	buckets map[string]*rate.Limiter // guarded by mu; by app id, apps with a rate only
}

type cached struct {
	limits  store.AppLimits // effective: the app's own merged with the defaults
	expires time.Time
}

// NewApps returns the enforcer of opts' limits.
func NewApps(opts AppsOptions) *Apps {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	return &Apps{opts: opts, cache: make(map[string]cached), buckets: make(map[string]*rate.Limiter)}
}

// Effective merges an app's own limits over the defaults: 0 takes the
// default, a negative value is unlimited (returned as 0).
func Effective(own, defaults store.AppLimits) store.AppLimits {
	pickInt := func(o, d int) int {
		switch {
		case o > 0:
			return o
		case o < 0:
			return 0
		}
		return max(d, 0)
	}
	e := store.AppLimits{
		Streams:  pickInt(own.Streams, defaults.Streams),
		Topics:   pickInt(own.Topics, defaults.Topics),
		Triggers: pickInt(own.Triggers, defaults.Triggers),
	}
	switch {
	case own.PublishRate > 0:
		e.PublishRate = own.PublishRate
	case own.PublishRate == 0:
		e.PublishRate = max(defaults.PublishRate, 0)
	}
	e.PublishBurst = pickInt(own.PublishBurst, defaults.PublishBurst)
	if e.PublishRate > 0 && e.PublishBurst == 0 {
		e.PublishBurst = int(math.Ceil(e.PublishRate)) // a second's worth
	}
	return e
}

// Limits returns an app's effective limits, from the cache or the lookup.
func (a *Apps) Limits(ctx context.Context, appID string) (store.AppLimits, error) {
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[appID]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.limits, nil
	}
	own := store.AppLimits{}
	if a.opts.LookupFunc != nil {
		var err error
		if own, err = a.opts.LookupFunc(ctx, appID); err != nil {
			return store.AppLimits{}, fmt.Errorf("app limits: %w", err)
		}
	}
	e := Effective(own, a.opts.Defaults)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCached {
		clear(a.cache) // a bound, not an eviction policy: entries are cheap to read again
	}
	a.cache[appID] = cached{limits: e, expires: now.Add(a.opts.CacheTTL)}
	return e, nil
}

// maxCached bounds the cache of app limits.
const maxCached = 100_000

// Forget drops what is cached of an app, after its limits changed or it
// was deleted.
func (a *Apps) Forget(appID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.cache, appID)
	delete(a.buckets, appID)
}

// AcquireStream takes one of the app's stream slots, or returns a
// *Refused. The caller calls release when the stream ends.
func (a *Apps) AcquireStream(ctx context.Context, appID string) (release func(), err error) {
	l, err := a.Limits(ctx, appID)
	if err != nil {
		return nil, err
	}
	if !a.streams.TryAcquire(appID, l.Streams) {
		return nil, a.refuse(&Refused{Kind: KindStreams, Max: float64(l.Streams), RetryAfter: heldRetry})
	}
	return func() { a.streams.Release(appID) }, nil
}

// AllowPublish spends n of the app's publish tokens, or returns a
// *Refused saying when n will be there, spending nothing.
func (a *Apps) AllowPublish(ctx context.Context, appID string, n int) error {
	l, err := a.Limits(ctx, appID)
	if err != nil {
		return err
	}
	if l.PublishRate <= 0 {
		return nil
	}
	now := time.Now()
	a.mu.Lock()
	b, ok := a.buckets[appID]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.PublishRate), l.PublishBurst)
		a.buckets[appID] = b
	} else if b.Limit() != rate.Limit(l.PublishRate) || b.Burst() != l.PublishBurst {
		b.SetLimitAt(now, rate.Limit(l.PublishRate))
		b.SetBurstAt(now, l.PublishBurst)
	}
	a.mu.Unlock()
	r := b.ReserveN(now, n)
	if !r.OK() { // more at once than the burst allows: never
		return a.refuse(&Refused{Kind: KindPublishRate, Max: l.PublishRate, RetryAfter: time.Second})
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return a.refuse(&Refused{Kind: KindPublishRate, Max: l.PublishRate, RetryAfter: d})
	}
	return nil
}

// CheckTopics returns a *Refused when an app holding have topics may not
// create another.
func (a *Apps) CheckTopics(ctx context.Context, appID string, have int) error {
	l, err := a.Limits(ctx, appID)
	if err != nil {
		return err
	}
	if l.Topics > 0 && have >= l.Topics {
		return a.refuse(&Refused{Kind: KindTopics, Max: float64(l.Topics), RetryAfter: heldRetry})
	}
	return nil
}

// CheckTriggers returns a *Refused when an app holding have triggers may
// not create another.
func (a *Apps) CheckTriggers(ctx context.Context, appID string, have int) error {
	l, err := a.Limits(ctx, appID)
	if err != nil {
		return err
	}
	if l.Triggers > 0 && have >= l.Triggers {
		return a.refuse(&Refused{Kind: KindTriggers, Max: float64(l.Triggers), RetryAfter: heldRetry})
	}
	return nil
}

func (a *Apps) refuse(r *Refused) error {
	if a.opts.RefusedFunc != nil {
		a.opts.RefusedFunc(r.Kind)
	}
	return r
}
