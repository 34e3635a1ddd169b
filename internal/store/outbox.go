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
	ID    string
	AppID string
	Topic string
	URL   string
	// Secret signs deliveries (Standard Webhooks: "whsec_" + base64 key).
	Secret string
	// Disabled triggers get no new deliveries and their pending ones are
	// not attempted (the receiver answered 410 Gone, for example).
	Disabled  bool
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
	// it (it is the webhook-id header).
	ID        string
	TriggerID string
	AppID     string
	Topic     string
	MessageID uint64
	// Body and PublishedAt are the message's, copied at enqueue: history
	// retention may prune the message before the last retry.
	Body        json.RawMessage
	PublishedAt time.Time
	// URL and Secret are the trigger's, as of the claim.
	URL    string
	Secret string

	State DeliveryState
	// Attempts counts the attempts made so far.
	Attempts int
	// NextAt is when a pending delivery is due.
	NextAt time.Time
	// LeaseUntil is when a claimed delivery may be claimed again (its
	// dispatcher died or hung).
	LeaseUntil time.Time
	LastStatus int
	LastError  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Outcome is the result of one attempt at a claimed delivery.
type Outcome struct {
	DeliveryID string
	// LeaseUntil must be the lease the claim returned: an outcome for a
	// lease that has since expired (and perhaps been claimed again) is
	// ignored, and Settle reports ErrConflict.
	LeaseUntil time.Time
	// State is DeliveryDelivered, DeliveryDead, or DeliveryPending to retry
	// at NextAt.
	State  DeliveryState
	NextAt time.Time
	// DisableTrigger disables the delivery's trigger (410 Gone).
	DisableTrigger bool
	Status         int
	Error          string
	At             time.Time
}

// Outbox is the durable path's storage. Implementations enqueue deliveries
// in Publish's transaction: one per active trigger of the topic.
type Outbox interface {
	// CreateTrigger stores a trigger; an unknown app or topic gives
	// ErrNotFound.
	CreateTrigger(ctx context.Context, t Trigger) error
	// ListTriggers returns a topic's triggers with their counts, oldest
	// first.
	ListTriggers(ctx context.Context, appID, topic string) ([]TriggerStats, error)
	// DeleteTrigger deletes a trigger and its deliveries, or returns
	// ErrNotFound.
	DeleteTrigger(ctx context.Context, appID, topic, id string) error

	// Claim leases up to limit pending deliveries of enabled triggers that
	// are due at now, oldest due first, until now+lease, counting an
	// attempt for each. A delivery whose lease ran out is due again.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// Settle records the outcome of an attempt.
	Settle(ctx context.Context, o Outcome) error

	// DeadLetters returns an app's dead deliveries, newest first.
	DeadLetters(ctx context.Context, appID string, limit int) ([]Delivery, error)
	// Redrive makes a dead delivery pending again, due at now, keeping its
	// id. Redriving one that is already pending or delivered changes
	// nothing (so two redrives give one delivery); an unknown id gives
	// ErrNotFound.
	Redrive(ctx context.Context, appID, id string, now time.Time) error
	// PruneDeliveries deletes delivered deliveries settled before
	// deliveredBefore and dead ones settled before deadBefore.
	PruneDeliveries(ctx context.Context, deliveredBefore, deadBefore time.Time) (int64, error)
}
