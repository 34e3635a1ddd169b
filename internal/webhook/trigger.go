package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// MaxTriggersPerTopic bounds the triggers of one topic: each publish to the
// topic enqueues one delivery per trigger, in the publish's transaction.
const MaxTriggersPerTopic = 20

// TriggerStore is the storage the trigger API needs: the trigger and
// dead-letter part of store.Outbox, whose doc gives the contract.
type TriggerStore interface {
	CreateTrigger(ctx context.Context, t store.Trigger) error
	ListTriggers(ctx context.Context, appID, topic string) ([]store.TriggerStats, error)
	DeleteTrigger(ctx context.Context, appID, topic, id string) error
	DeadLetters(ctx context.Context, appID string, limit int) ([]store.Delivery, error)
	Redrive(ctx context.Context, appID, id string, now time.Time) error
	store.TriggerAdmin
}

// Triggers manages webhook triggers and dead letters for the HTTP API: it
// checks URLs against the guard and secrets against the Standard Webhooks
// rules before anything is stored. It is safe for concurrent use.
type Triggers struct {
	store TriggerStore
	guard *Guard
	wake  func()
	newID func() string
	// sender makes test deliveries; Close releases its connections.
	sender *Sender
}

// TriggersOptions configures Triggers.
type TriggersOptions struct {
	// Store keeps triggers and deliveries. Required.
	Store TriggerStore
	// Guard checks trigger URLs. Nil means NewGuard(nil).
	Guard *Guard
	// WakeFunc, if not nil, is called after a redrive so that the
	// dispatcher looks for the delivery at once.
	WakeFunc func()
	// NewIDFunc returns a new trigger id. Required.
	NewIDFunc func() string
	// Timeout bounds a test delivery. 0 means DefaultTimeout.
	Timeout time.Duration
}

// NewTriggers returns the trigger API's service.
func NewTriggers(opts TriggersOptions) (*Triggers, error) {
	if opts.Store == nil || opts.NewIDFunc == nil {
		return nil, errors.New("webhook: triggers need a store and an id generator")
	}
	if opts.Guard == nil {
		opts.Guard = NewGuard(nil)
	}
	if opts.WakeFunc == nil {
		opts.WakeFunc = func() {}
	}
	return &Triggers{
		store: opts.Store, guard: opts.Guard, wake: opts.WakeFunc, newID: opts.NewIDFunc,
		sender: NewSender(SenderOptions{Guard: opts.Guard, Timeout: opts.Timeout, MaxIdleConnsPerHost: 1}),
	}, nil
}

// Create stores a trigger that POSTs every message of (appID, topic) to
// rawURL, signed with secret, or with a generated secret when it is empty.
// An invalid URL or secret gives an error wrapping ErrInvalidURL or
// ErrInvalidSecret; a URL that reaches a refused address, a *RefusedError;
// an unknown topic, store.ErrNotFound; a topic that has MaxTriggersPerTopic
// already, ErrTooManyTriggers.
func (t *Triggers) Create(ctx context.Context, appID, topic, rawURL, secret string) (store.Trigger, error) {
	if secret == "" {
		secret = NewSecret()
	} else if _, err := ParseSecret(secret); err != nil {
		return store.Trigger{}, err
	}
	u, err := t.guard.CheckURL(ctx, rawURL)
	if err != nil {
		return store.Trigger{}, err
	}
	existing, err := t.store.ListTriggers(ctx, appID, topic)
	if err != nil {
		return store.Trigger{}, fmt.Errorf("create trigger: %w", err)
	}
	if len(existing) >= MaxTriggersPerTopic {
		return store.Trigger{}, fmt.Errorf("%w: topic %q has %d", ErrTooManyTriggers, topic, len(existing))
	}
	tr := store.Trigger{
		ID: t.newID(), AppID: appID, Topic: topic, URL: u, Secret: secret,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	if err := t.store.CreateTrigger(ctx, tr); err != nil {
		return store.Trigger{}, fmt.Errorf("create trigger: %w", err)
	}
	return tr, nil
}

// List returns a topic's triggers with their delivery counts, oldest first.
// An unknown topic gives store.ErrNotFound.
func (t *Triggers) List(ctx context.Context, appID, topic string) ([]store.TriggerStats, error) {
	ts, err := t.store.ListTriggers(ctx, appID, topic)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	return ts, nil
}

// Delete deletes a trigger and its deliveries; an unknown one gives
// store.ErrNotFound.
func (t *Triggers) Delete(ctx context.Context, appID, topic, id string) error {
	if err := t.store.DeleteTrigger(ctx, appID, topic, id); err != nil {
		return fmt.Errorf("delete trigger: %w", err)
	}
	return nil
}

// DeadLetters returns up to limit of an app's dead deliveries, newest first.
func (t *Triggers) DeadLetters(ctx context.Context, appID string, limit int) ([]store.Delivery, error) {
	ds, err := t.store.DeadLetters(ctx, appID, limit)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return ds, nil
}

// Redrive queues a dead delivery again, with its id, due now. Redriving one
// that is pending or delivered changes nothing, so a redrive sent twice
// delivers once. An unknown id gives store.ErrNotFound.
func (t *Triggers) Redrive(ctx context.Context, appID, id string) error {
	if err := t.store.Redrive(ctx, appID, id, time.Now()); err != nil {
		return fmt.Errorf("redrive: %w", err)
	}
	t.wake()
	return nil
}
