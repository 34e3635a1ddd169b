package store

import (
	"context"
	"encoding/json"
	"time"
)

// This file is the contract of the durable path: webhook triggers and the
// transactional outbox of their deliveries. It is kept apart from the
// realtime path (package broadcast): a delivery is enqueued in the same
// transaction as its message, retried until delivered or dead, and never
// delays publish or SSE.

// Trigger says: POST every message published to Topic to URL.
type Trigger struct {
	// ID is chosen by the caller and unique across the install.
	ID    string
	AppID string
	Topic string
	URL   string
	// Secret signs deliveries (Standard Webhooks: "whsec_" + base64 key).
	Secret string
	// PreviousSecret is the secret Secret replaced (see TriggerUpdate):
	// until PreviousSecretUntil, deliveries are signed with both, so a
	// receiver can switch to the new one at its own pace. Empty when none.
	PreviousSecret      string
	PreviousSecretUntil time.Time
	// Disabled triggers get no new deliveries and their pending ones are
	// not attempted (the receiver answered 410 Gone, for example).
	Disabled bool
	// CreatedAt is stored as now when zero.
	CreatedAt time.Time
}

// TriggerStats is a trigger with the counts of its deliveries.
type TriggerStats struct {
	Trigger
	Pending, Delivered, Dead int64
}

// DeliveryState is where a delivery is in its life.
type DeliveryState string

// The states of a delivery.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryDead      DeliveryState = "dead"
)

// Delivery is one message on its way to one trigger's URL.
type Delivery struct {
	// ID is stable across retries and redrives: receivers deduplicate on
	// it (it is the webhook-id header). Stores make it with NewDeliveryID:
	// "msg_" and 26 base32 characters, time-ordered and random, unique
	// across the install and never used again, even by a trigger created
	// with the id of a deleted one.
	ID        string
	TriggerID string
	AppID     string
	Topic     string
	MessageID uint64
	// Body and PublishedAt are the message's, copied at enqueue: history
	// retention may prune the message before the last retry.
	Body        json.RawMessage
	PublishedAt time.Time
	// URL and Secret are the trigger's, as of the claim. DeadLetters
	// gives the URL but not the Secret.
	URL    string
	Secret string
	// PreviousSecret is the trigger's previous secret while it is still
	// in force as of the claim (Trigger.PreviousSecretUntil), else empty:
	// the delivery carries a signature for each.
	PreviousSecret string

	State DeliveryState
	// Attempts counts the attempts made so far; Claim counts the one it
	// leases the delivery for. Redrive starts it again from 0.
	Attempts int
	// NextAt is when a pending delivery is due.
	NextAt time.Time
	// LeaseUntil is when a claimed delivery may be claimed again (its
	// dispatcher died or hung); zero when not leased. Pass it to Settle as
	// Claim returned it: it also tells this claim from a later one.
	LeaseUntil time.Time
	// LastStatus and LastError are the last settled attempt's (0 and ""
	// before the first).
	LastStatus int
	LastError  string
	// CreatedAt is when the delivery was enqueued: its message's
	// PublishedAt. UpdatedAt is when it was enqueued, last settled or
	// redriven.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Outcome is the result of one attempt at a claimed delivery.
type Outcome struct {
	DeliveryID string
	// LeaseUntil must be the lease the claim returned. An outcome is
	// recorded only while the delivery still holds that lease: once it has
	// been claimed again (after the lease ran out) or settled, the outcome
	// is ignored and Settle reports ErrConflict. An outcome that arrives
	// after its lease ran out but before another claim is still recorded:
	// the attempt happened, and recording it spares the receiver a
	// duplicate.
	LeaseUntil time.Time
	// State is DeliveryDelivered, DeliveryDead, or DeliveryPending to retry
	// at NextAt (a zero NextAt means at At).
	State  DeliveryState
	NextAt time.Time
	// DisableTrigger disables the delivery's trigger (410 Gone).
	DisableTrigger bool
	// Status is the receiver's HTTP status (0 when none came), Error what
	// went wrong ("" on success). A store may replace bytes of Error it
	// cannot hold as text (invalid UTF-8, NUL) with U+FFFD.
	Status int
	Error  string
	// At is when the attempt ended; it becomes the delivery's UpdatedAt.
	// Zero means now.
	At time.Time
	// Duration is how long the attempt took, for the attempts log.
	Duration time.Duration
}

// Outbox is the durable path's storage. Implementations enqueue deliveries
// in Publish's transaction: one per enabled trigger of the topic for each
// message, pending and due at once (attempts 0, NextAt the message's
// PublishedAt), so that a message commits with its deliveries or not at
// all. A publish that repeats an earlier one (PublishRequest.IdempotencyKey)
// enqueues nothing.
//
// Implementations are safe for concurrent use, also by several processes
// on one database where the store supports that (Postgres): two Claims
// never lease one delivery at once. After Close every method returns
// ErrClosed. Both stores implement it; a caller finds it with a type
// assertion on its store.Store.
type Outbox interface {
	// CreateTrigger stores a trigger; an unknown app or topic gives
	// ErrNotFound, an id that exists ErrConflict.
	CreateTrigger(ctx context.Context, t Trigger) error
	// ListTriggers returns a topic's triggers with their counts, oldest
	// first; an unknown app or topic gives ErrNotFound.
	ListTriggers(ctx context.Context, appID, topic string) ([]TriggerStats, error)
	// DeleteTrigger deletes a trigger and its deliveries, or returns
	// ErrNotFound (also for a trigger of another topic or app).
	DeleteTrigger(ctx context.Context, appID, topic, id string) error

	// Claim leases up to limit pending deliveries of enabled triggers that
	// are due at now, oldest due first, until now+lease, counting an
	// attempt for each. A delivery whose lease ran out is due again. Each
	// comes with its trigger's URL and Secret. lease must be positive; a
	// limit of 0 or less claims nothing.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// Settle records the outcome of an attempt and ends the lease, and
	// adds the attempt to its trigger's attempts log (see TriggerAdmin): an
	// unknown delivery gives ErrNotFound, a lease the delivery no longer
	// holds ErrConflict (see Outcome.LeaseUntil), and then nothing
	// changes, the trigger included.
	Settle(ctx context.Context, o Outcome) error

	// DeadLetters returns up to limit of an app's dead deliveries, newest
	// (by UpdatedAt) first, with their trigger's URL but not its Secret. An
	// unknown app gives ErrNotFound.
	DeadLetters(ctx context.Context, appID string, limit int) ([]Delivery, error)
	// Redrive makes a dead delivery pending again, due at now, keeping its
	// id, with Attempts back to 0 (a full retry schedule) and no lease;
	// LastStatus and LastError stay until the next attempt. Redriving one
	// that is already pending or delivered changes nothing (so two
	// redrives give one delivery); an unknown id, or one of another app,
	// gives ErrNotFound. A delivery whose trigger is disabled gives
	// ErrConflict and stays as it is: Claim would pass it over for ever.
	Redrive(ctx context.Context, appID, id string, now time.Time) error
	// PruneDeliveries deletes delivered deliveries settled before
	// deliveredBefore and dead ones settled before deadBefore (by
	// UpdatedAt), and returns how many. It also deletes the attempts (see
	// TriggerAdmin) older than the earlier of the two, not counted. It deletes in short transactions,
	// so it never holds up publishes for long.
	PruneDeliveries(ctx context.Context, deliveredBefore, deadBefore time.Time) (int64, error)
}
