package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/store"
)

// MaxTriggersPerTopic bounds the triggers of one topic: each publish to the
// topic enqueues one delivery per trigger, in the publish's transaction.
const MaxTriggersPerTopic = 20

// TriggerStore is the storage the trigger API needs: the trigger and
// dead-letter part of store.Outbox, whose doc gives the contract.
type TriggerStore interface {
	// CreateTriggerWithin is store.LimitStore's: a cap <= 0 is no cap.
	CreateTriggerWithin(ctx context.Context, t store.Trigger, max, perTopic int) error
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
	limits TriggerLimits // nil: none
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
	// Limits, if not nil, bounds each app's triggers: Create counts and
	// creates in one step of the store.
	Limits TriggerLimits
}

// TriggerLimits is each app's trigger limit, as Triggers enforces it;
// limit.Apps is one. It must be safe for concurrent use.
type TriggerLimits interface {
	// Limits returns an app's limits in force; Triggers <= 0 is
	// unlimited.
	Limits(ctx context.Context, appID string) (store.AppLimits, error)
	// CheckTriggers returns the error that refuses a create to an app
	// holding have triggers, or nil if it may create one.
	CheckTriggers(ctx context.Context, appID string, have int) error
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
		limits: opts.Limits,
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
	tr := store.Trigger{
		ID: t.newID(), AppID: appID, Topic: topic, URL: u, Secret: secret,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	if err := t.createWithin(ctx, tr); err != nil {
		return store.Trigger{}, err
	}
	return tr, nil
}

// createWithin stores tr within MaxTriggersPerTopic and its app's trigger
// limit, both counted and created in one step of the store (see
// limit.CreateWithin). The topic's cap is fixed, so its refusal is final.
func (t *Triggers) createWithin(ctx context.Context, tr store.Trigger) error {
	return limit.CreateWithin(
		func() (int, error) {
			if t.limits == nil {
				return 0, nil
			}
			l, err := t.limits.Limits(ctx, tr.AppID)
			if err != nil {
				return 0, fmt.Errorf("create trigger: %w", err)
			}
			return l.Triggers, nil
		},
		func(max int) error {
			err := t.store.CreateTriggerWithin(ctx, tr, max, MaxTriggersPerTopic)
			switch {
			case errors.Is(err, store.ErrTopicTriggersFull):
				return fmt.Errorf("%w: topic %q has %d", ErrTooManyTriggers, tr.Topic, MaxTriggersPerTopic)
			case err != nil:
				return fmt.Errorf("create trigger: %w", err)
			}
			return nil
		},
		func(have int) error { return t.limits.CheckTriggers(ctx, tr.AppID, have) },
	)
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
