package store

import (
	"context"
	"time"
)

// This file is the contract of a trigger's life after CreateTrigger:
// disabling and enabling it, rotating its secret with an overlap, and the
// log of its attempts that the person on call reads.

// TriggerUpdate changes a trigger. Nil and empty fields leave what they
// name as it is.
type TriggerUpdate struct {
	// Disabled, if not nil, disables or enables the trigger. Enabling one
	// lets Claim take its pending deliveries again (they kept their
	// schedule); disabling one stops Claim and Publish enqueueing for it.
	Disabled *bool
	// Secret, if not empty, becomes the trigger's secret, and the one it
	// replaces its PreviousSecret until PreviousUntil (a zero or past
	// PreviousUntil drops the old secret at once).
	Secret        string
	PreviousUntil time.Time
}

// Attempt is one attempt at a delivery as its trigger's log keeps it.
type Attempt struct {
	TriggerID  string
	DeliveryID string
	// At is when the attempt ended.
	At time.Time
	// Status is the receiver's HTTP status, 0 when none came; Error is
	// what went wrong, "" on success.
	Status   int
	Error    string
	Duration time.Duration
	// NextAt is when the delivery is tried again; zero when it is not
	// (delivered, dead, or a test).
	NextAt time.Time
	// Test marks a test delivery (TriggerAdmin.RecordAttempt), which is
	// not in the outbox.
	Test bool
}

// TriggerAdmin is the management side of triggers. Implementations are safe
// for concurrent use; after Close every method returns ErrClosed. Both
// stores implement it; a caller finds it with a type assertion on its
// store.Store.
type TriggerAdmin interface {
	// UpdateTrigger applies u to a trigger of (appID, topic); an unknown
	// trigger, or one of another topic or app, gives ErrNotFound.
	UpdateTrigger(ctx context.Context, appID, topic, id string, u TriggerUpdate) error
	// RecordAttempt adds an attempt made outside the outbox (a test
	// delivery) to its trigger's log; an unknown trigger gives ErrNotFound.
	RecordAttempt(ctx context.Context, a Attempt) error
	// Attempts returns up to limit of a trigger's latest attempts, newest
	// first; an unknown trigger, or one of another topic or app, gives
	// ErrNotFound. Outbox.Settle adds an attempt; PruneDeliveries prunes
	// them.
	Attempts(ctx context.Context, appID, topic, id string, limit int) ([]Attempt, error)
}
