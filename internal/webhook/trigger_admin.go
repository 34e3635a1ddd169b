package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Bounds of a secret rotation's overlap: how long the secret a rotation
// replaced keeps signing deliveries beside the new one.
const (
	DefaultSecretOverlap = 24 * time.Hour
	MaxSecretOverlap     = 7 * 24 * time.Hour
)

// MaxAttempts is the most attempts Attempts returns: the log a person reads.
const MaxAttempts = 100

// ErrTriggerNotFound means no trigger has this id on this topic of this
// app. It wraps store.ErrNotFound.
var ErrTriggerNotFound = fmt.Errorf("trigger %w", store.ErrNotFound)

// TriggerChange is what Update changes. The zero value changes nothing.
type TriggerChange struct {
	// Disabled, if not nil, disables or enables the trigger. Enabling one
	// resumes its pending deliveries on their schedule (those whose time
	// passed go at once).
	Disabled *bool
	// RotateSecret replaces the secret with Secret, or with a generated
	// one when Secret is empty. The old secret keeps signing deliveries,
	// beside the new one, for Overlap (0: it stops at once).
	RotateSecret bool
	Secret       string
	Overlap      time.Duration
}

// Update changes a trigger of (appID, topic) and returns it as it is now,
// with the new secret when it rotated one. An invalid secret or overlap
// gives an error wrapping ErrInvalidSecret; an unknown trigger
// ErrTriggerNotFound.
func (t *Triggers) Update(ctx context.Context, appID, topic, id string, c TriggerChange) (store.TriggerStats, error) {
	var u store.TriggerUpdate
	u.Disabled = c.Disabled
	if c.RotateSecret {
		if c.Overlap < 0 || c.Overlap > MaxSecretOverlap {
			return store.TriggerStats{}, fmt.Errorf("%w: the overlap must be 0 to %s", ErrInvalidSecret, MaxSecretOverlap)
		}
		u.Secret = c.Secret
		if u.Secret == "" {
			u.Secret = NewSecret()
		} else if _, err := ParseSecret(u.Secret); err != nil {
			return store.TriggerStats{}, err
		}
		if c.Overlap > 0 {
			u.PreviousUntil = time.Now().Add(c.Overlap).UTC().Truncate(time.Microsecond)
		}
	}
	if err := t.store.UpdateTrigger(ctx, appID, topic, id, u); err != nil {
		return store.TriggerStats{}, triggerErr(err)
	}
	if c.Disabled != nil && !*c.Disabled {
		t.wake() // its pending deliveries may be due
	}
	return t.get(ctx, appID, topic, id)
}

// get returns one trigger with its counts.
func (t *Triggers) get(ctx context.Context, appID, topic, id string) (store.TriggerStats, error) {
	ts, err := t.store.ListTriggers(ctx, appID, topic)
	if err != nil {
		return store.TriggerStats{}, triggerErr(err)
	}
	for _, tr := range ts {
		if tr.ID == id {
			return tr, nil
		}
	}
	return store.TriggerStats{}, ErrTriggerNotFound
}

func triggerErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrTriggerNotFound, err)
	}
	return fmt.Errorf("trigger: %w", err)
}

// TestMessage is the message of a test delivery, which no topic holds.
type TestMessage struct {
	Test      bool   `json:"test"`
	TriggerID string `json:"trigger_id"`
	Note      string `json:"note"`
}

// Test sends one signed test delivery to a trigger's URL now, disabled or
// not, outside the outbox: it is attempted once, never retried, and kept
// in the trigger's attempts log (Test set). Its body is a message event
// like any other, with message id 0 and a TestMessage as the message. It
// returns the attempt; an unknown trigger gives ErrTriggerNotFound.
func (t *Triggers) Test(ctx context.Context, appID, topic, id string) (store.Attempt, error) {
	tr, err := t.get(ctx, appID, topic, id)
	if err != nil {
		return store.Attempt{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	msg, _ := json.Marshal(TestMessage{ // a struct of strings always encodes
		Test: true, TriggerID: id, Note: "a test delivery from Herald; no topic holds this message",
	})
	d := store.Delivery{
		ID: store.NewDeliveryID(), TriggerID: id, AppID: appID, Topic: topic,
		Body: msg, PublishedAt: now, URL: tr.URL, Secret: tr.Secret,
	}
	if tr.PreviousSecret != "" && tr.PreviousSecretUntil.After(now) {
		d.PreviousSecret = tr.PreviousSecret
	}
	res := t.sender.Send(ctx, &d)
	a := store.Attempt{
		TriggerID: id, DeliveryID: d.ID, At: time.Now().UTC().Truncate(time.Microsecond),
		Status: res.Status, Duration: res.Duration, Test: true,
	}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	// Logged even when the caller has gone: the attempt happened.
	if err := t.store.RecordAttempt(context.WithoutCancel(ctx), a); err != nil {
		return a, triggerErr(err)
	}
	return a, nil
}

// Attempts returns up to limit (at most MaxAttempts) of a trigger's latest
// attempts, newest first; an unknown trigger gives ErrTriggerNotFound.
func (t *Triggers) Attempts(ctx context.Context, appID, topic, id string, limit int) ([]store.Attempt, error) {
	if limit <= 0 || limit > MaxAttempts {
		limit = MaxAttempts
	}
	as, err := t.store.Attempts(ctx, appID, topic, id, limit)
	if err != nil {
		return nil, triggerErr(err)
	}
	return as, nil
}

// Close releases the connections test deliveries left open. The Triggers
// still work after it; a later test opens a new connection.
func (t *Triggers) Close() { t.sender.Close() }
