package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// LimitsSQL is a store's SQL for Limits, in its own dialect.
type LimitsSQL struct {
	// Get reads the limits of app arg 1 as JSON text: one row for an
	// existing app, NULL when it never had its own; no row for no such
	// app.
	Get string
	// Set replaces the limits of app arg 1 with arg 2, JSON text; a
	// missing app fails the foreign key (store.ErrNotFound).
	Set string
	// CountTriggers counts the triggers of app arg 1.
	CountTriggers string
	// CountTopicTriggers counts the triggers of topic arg 2 of app arg 1.
	CountTopicTriggers string
}

// LimitsDB is what a store gives Limits: its driver calls. Errors come back
// already translated into the store's terms.
type LimitsDB interface {
	// QueryRow runs query with args and scans its one row into dest; no
	// row gives store.ErrNotFound.
	QueryRow(ctx context.Context, query string, args []any, dest ...any) error
	// ExecWrite runs query with args in a transaction of its own on the
	// store's write path.
	ExecWrite(ctx context.Context, query string, args ...any) error
	// Holds reports whether the store can hold name as text at all; a name
	// it cannot hold names nothing.
	Holds(name string) bool
}

// Limits implements the methods of store.LimitStore over a LimitsDB; the
// store's own methods call it once it has checked that it is open.
type Limits struct {
	// DB is the store's side of the seam.
	DB LimitsDB
	// SQL is the store's limits statements.
	SQL LimitsSQL
}

// AppLimits returns an app's limits: all zero (the defaults) for an app
// that never had its own, store.ErrNotFound for no such app.
func (l *Limits) AppLimits(ctx context.Context, appID string) (store.AppLimits, error) {
	var raw []byte
	err := store.ErrNotFound
	if l.DB.Holds(appID) {
		err = l.DB.QueryRow(ctx, l.SQL.Get, []any{appID}, &raw)
	}
	if err != nil {
		return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, err)
	}
	var limits store.AppLimits
	if raw != nil {
		if err := json.Unmarshal(raw, &limits); err != nil {
			return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, err)
		}
	}
	return limits, nil
}

// SetAppLimits replaces an app's limits, or returns store.ErrNotFound.
func (l *Limits) SetAppLimits(ctx context.Context, appID string, limits store.AppLimits) error {
	if !l.DB.Holds(appID) {
		return fmt.Errorf("set app limits %s: %w", appID, store.ErrNotFound)
	}
	raw, err := json.Marshal(limits)
	if err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	if err := l.DB.ExecWrite(ctx, l.SQL.Set, appID, string(raw)); err != nil {
		return fmt.Errorf("set app limits %s: %w", appID, err)
	}
	return nil
}

// CountTriggers returns how many webhook triggers an app has, over all its
// topics (0 for no such app).
func (l *Limits) CountTriggers(ctx context.Context, appID string) (int, error) {
	if !l.DB.Holds(appID) {
		return 0, nil
	}
	var n int
	if err := l.DB.QueryRow(ctx, l.SQL.CountTriggers, []any{appID}, &n); err != nil {
		return 0, fmt.Errorf("count triggers %s: %w", appID, err)
	}
	return n, nil
}

// CheckTriggerRoom checks, inside the write transaction that then creates
// the trigger, that topic of app has room for another one: fewer than
// perTopic on the topic (store.ErrTopicTriggersFull) and fewer than max in
// the app (store.ErrLimitReached); a cap <= 0 is not checked. count runs
// one of q's counting queries in that transaction.
func CheckTriggerRoom(count func(query string, args ...any) (int, error), q LimitsSQL, app, topic string, max, perTopic int) error {
	if perTopic > 0 {
		n, err := count(q.CountTopicTriggers, app, topic)
		if err != nil {
			return err
		}
		if n >= perTopic {
			return store.ErrTopicTriggersFull
		}
	}
	if max > 0 {
		n, err := count(q.CountTriggers, app)
		if err != nil {
			return err
		}
		if n >= max {
			return store.ErrLimitReached
		}
	}
	return nil
}
