package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Defaults for KeySyncOptions fields left at zero.
const (
	// DefaultRevocationPoll is how often KeySync asks the store for new
	// revocations: a revoked key dies on every node within about this long
	// (the bound is one second).
	DefaultRevocationPoll = 250 * time.Millisecond
	// DefaultTouchInterval is how often KeySync writes last-used times.
	DefaultTouchInterval = 30 * time.Second
	// RevocationMargin is how far before the store's last answer the next
	// poll starts: a revocation stamped before a poll but committed after
	// it is still seen, as long as its transaction took less than this.
	RevocationMargin = 5 * time.Second
)

// KeyFeed is what KeySync reads and writes; the stores satisfy it (see
// store.Keys for the contract).
type KeyFeed interface {
	Revocations(ctx context.Context, since time.Time) ([]store.Revocation, time.Time, error)
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// KeySyncOptions configures a KeySync. Zero values mean the documented
// defaults.
type KeySyncOptions struct {
	// Feed is the store's key lifecycle. Required.
	Feed KeyFeed
	// Verifier is the node's key cache: revoked keys are dropped from it,
	// and its last-used times are written. Required.
	Verifier *Verifier
	// RevokedFunc, if not nil, is called once for each revocation heard
	// (to end the streams opened with the key). It must not block.
	RevokedFunc func(store.Revocation)
	// PollInterval is how often revocations are read; 0 means
	// DefaultRevocationPoll.
	PollInterval time.Duration
	// TouchInterval is how often last-used times are written; 0 means
	// DefaultTouchInterval.
	TouchInterval time.Duration
	// Logger logs failed polls, once per run of failures. Nil discards.
	Logger *slog.Logger
}

// KeySync keeps one node's view of keys in step with the store. It polls
// the store's revocation feed (a cheap indexed read), which works the same
// whatever carries the cluster's other traffic: every node's KeySync hears
// every revocation within PollInterval, drops the key from its Verifier and
// calls RevokedFunc. It also writes the Verifier's last-used times.
//
// # Lifecycle
//
// Run does the work until its context ends; the caller owns the goroutine
// that runs it.
type KeySync struct {
	opts KeySyncOptions
	log  *slog.Logger
}

// NewKeySync returns a KeySync, or an error when a required option is
// missing.
func NewKeySync(opts KeySyncOptions) (*KeySync, error) {
	if opts.Feed == nil || opts.Verifier == nil {
		return nil, errors.New("key sync: Feed and Verifier are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultRevocationPoll
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = DefaultTouchInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeySync{opts: opts, log: log}, nil
}

// Run polls and writes until ctx ends, then writes the last-used times it
// holds and returns nil. Store errors are logged and retried at the next
// tick: a node that cannot read the feed can serve nothing else either.
func (k *KeySync) Run(ctx context.Context) error {
	poll := time.NewTicker(k.opts.PollInterval)
	defer poll.Stop()
	touch := time.NewTicker(k.opts.TouchInterval)
	defer touch.Stop()
	defer func() {
		// The last minute of use is worth a short write on the way out.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = k.touch(flushCtx) // best effort: a last-used time is advisory
	}()

	p := poller{seen: make(map[string]time.Time)}
	failing := false
	for {
		err := p.poll(ctx, k.opts.Feed, k.heard)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			k.log.Warn("read key revocations; retrying", "err", err)
			failing = true
		case err == nil && failing:
			k.log.Info("reading key revocations again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		case <-touch.C:
			if err := k.touch(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("write key last-used times", "err", err)
			}
		}
	}
}

func (k *KeySync) heard(r store.Revocation) {
	k.opts.Verifier.ForgetKey(r.KeyID)
	if k.opts.RevokedFunc != nil {
		k.opts.RevokedFunc(r)
	}
}

func (k *KeySync) touch(ctx context.Context) error {
	used := k.opts.Verifier.TakeUsed()
	if len(used) == 0 {
		return nil
	}
	if err := k.opts.Feed.TouchKeys(ctx, used); err != nil {
		return fmt.Errorf("touch keys: %w", err)
	}
	return nil
}

// poller is the cursor over the revocation feed.
type poller struct {
	// since is where the next read starts; zero before the first.
	since time.Time
	// seen holds the revocations already handed on that the next read
	// may return again (those at or after since), by key id.
	seen map[string]time.Time
}

// poll reads the feed once and hands each revocation not seen before to
// heard. The first read starts a margin before now: a node that just
// started has nothing cached, so older revocations are no concern of it.
func (p *poller) poll(ctx context.Context, feed KeyFeed, heard func(store.Revocation)) error {
	since := p.since
	if since.IsZero() {
		since = time.Now().Add(-RevocationMargin)
	}
	revs, now, err := feed.Revocations(ctx, since)
	if err != nil {
		return err
	}
	for _, r := range revs {
		if _, ok := p.seen[r.KeyID]; ok {
			continue
		}
		p.seen[r.KeyID] = r.RevokedAt
		heard(r)
	}
	p.since = now.Add(-RevocationMargin)
	for id, at := range p.seen {
		if at.Before(p.since) {
			delete(p.seen, id)
		}
	}
	return nil
}
