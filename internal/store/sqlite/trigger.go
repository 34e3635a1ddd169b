package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.TriggerAdmin = (*Store)(nil)

// insertAttemptQuery adds an attempt to a trigger's log: args trigger id,
// delivery id, at, status, error, duration, next_at (NULL when none), test.
const insertAttemptQuery = `
	INSERT INTO attempts (trigger_id, delivery_id, at, status, error, duration, next_at, test)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`

// triggerOfTopic selects the trigger ?1 of topic ?3 of app ?2: what makes a
// trigger of another topic or app not found.
const triggerOfTopic = `id = ?1 AND topic_id = (SELECT id FROM topics WHERE app_id = ?2 AND name = ?3)`

// UpdateTrigger applies u to a trigger of (appID, topic), or returns
// store.ErrNotFound.
func (s *Store) UpdateTrigger(ctx context.Context, appID, topic, id string, u store.TriggerUpdate) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("update trigger: %w", err)
	}
	defer s.mu.RUnlock()

	var disabled sql.NullBool
	if u.Disabled != nil {
		disabled = sql.NullBool{Bool: *u.Disabled, Valid: true}
	}
	var until int64
	if !u.PreviousUntil.IsZero() {
		until = u.PreviousUntil.UnixNano()
	}
	// The right-hand sides see the row as it was: the old secret moves to
	// previous_secret as the new one replaces it.
	res, err := s.wdb.ExecContext(ctx, `
		UPDATE triggers SET
			disabled = coalesce(?4, disabled),
			previous_secret = CASE WHEN ?5 = '' THEN previous_secret ELSE secret END,
			previous_secret_until = CASE WHEN ?5 = '' THEN previous_secret_until ELSE ?6 END,
			secret = CASE WHEN ?5 = '' THEN secret ELSE ?5 END
		WHERE `+triggerOfTopic, id, appID, topic, disabled, u.Secret, until)
	if err == nil {
		err = requireOneRow(res)
	}
	if err != nil {
		return fmt.Errorf("update trigger %s: %w", id, interpretError(err))
	}
	return nil
}

// RecordAttempt adds an attempt to its trigger's log; an unknown trigger
// gives store.ErrNotFound (the foreign key).
func (s *Store) RecordAttempt(ctx context.Context, a store.Attempt) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	defer s.mu.RUnlock()

	var next sql.NullInt64
	if !a.NextAt.IsZero() {
		next = sql.NullInt64{Int64: a.NextAt.UnixNano(), Valid: true}
	}
	_, err := s.wdb.ExecContext(ctx, insertAttemptQuery,
		a.TriggerID, a.DeliveryID, unixNano(a.At), a.Status, a.Error, int64(a.Duration), next, a.Test)
	if err != nil {
		return fmt.Errorf("record attempt of trigger %s: %w", a.TriggerID, interpretError(err))
	}
	return nil
}

// Attempts returns up to limit of a trigger's latest attempts, newest
// first, or store.ErrNotFound.
func (s *Store) Attempts(ctx context.Context, appID, topic, id string, limit int) (_ []store.Attempt, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("attempts of trigger %s: %w", id, interpretError(err))
		}
	}()

	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM triggers WHERE `+triggerOfTopic, id, appID, topic).Scan(&one); err != nil {
		return nil, err
	}
	out := []store.Attempt{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT delivery_id, at, status, error, duration, next_at, test
		FROM attempts WHERE trigger_id = ?1 ORDER BY seq DESC LIMIT ?2`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		a := store.Attempt{TriggerID: id}
		var at, dur int64
		var next sql.NullInt64
		if err := rows.Scan(&a.DeliveryID, &at, &a.Status, &a.Error, &dur, &next, &a.Test); err != nil {
			return nil, err
		}
		a.At = fromUnixNano(at)
		a.Duration = time.Duration(dur)
		if next.Valid {
			a.NextAt = fromUnixNano(next.Int64)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
