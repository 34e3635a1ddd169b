package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.TriggerAdmin = (*Store)(nil)

// triggerOfTopic selects the trigger $1 of topic $3 of app $2: what makes a
// trigger of another topic or app not found.
const triggerOfTopic = `id = $1 AND topic_id = (SELECT id FROM herald.topics WHERE app_id = $2 AND name = $3)`

// UpdateTrigger applies u to a trigger of (appID, topic), or returns
// store.ErrNotFound.
func (s *Store) UpdateTrigger(ctx context.Context, appID, topic, id string, u store.TriggerUpdate) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("update trigger: %w", err)
	}
	defer s.mu.RUnlock()

	if !storable(appID) || !storable(topic) || !storable(id) {
		return fmt.Errorf("update trigger %s: %w", id, store.ErrNotFound)
	}
	if !storable(u.Secret) {
		return fmt.Errorf("update trigger %s: the secret is not valid UTF-8 or holds NUL", id)
	}
	// The right-hand sides see the row as it was: the old secret moves to
	// previous_secret as the new one replaces it.
	tag, err := s.pool.Exec(ctx, `
		UPDATE herald.triggers SET
			disabled = coalesce($4::boolean, disabled),
			previous_secret = CASE WHEN $5 = '' THEN previous_secret ELSE secret END,
			previous_secret_until = CASE WHEN $5 = '' THEN previous_secret_until ELSE $6::timestamptz END,
			secret = CASE WHEN $5 = '' THEN secret ELSE $5 END
		WHERE `+triggerOfTopic, id, appID, topic, u.Disabled, u.Secret, nullTime(u.PreviousUntil))
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
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

	err := store.ErrNotFound
	if storable(a.TriggerID) && storable(a.DeliveryID) {
		errText := strings.ReplaceAll(strings.ToValidUTF8(a.Error, "\uFFFD"), "\x00", "\uFFFD")
		_, err = s.pool.Exec(ctx, `
			INSERT INTO herald.attempts (trigger_id, delivery_id, at, status, error, duration_us, next_at, test)
			VALUES ($1, $2, coalesce($3::timestamptz, now()), $4, $5, $6, $7, $8)`,
			a.TriggerID, a.DeliveryID, nullTime(a.At), a.Status, errText, a.Duration.Microseconds(), nullTime(a.NextAt), a.Test)
	}
	if err != nil {
		return fmt.Errorf("record attempt of trigger %s: %w", a.TriggerID, interpretError(err))
	}
	return nil
}

// Attempts returns up to limit of a trigger's latest attempts, newest
// first, or store.ErrNotFound.
func (s *Store) Attempts(ctx context.Context, appID, topic, id string, limit int) ([]store.Attempt, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	defer s.mu.RUnlock()

	if !storable(appID) || !storable(topic) || !storable(id) {
		return nil, fmt.Errorf("attempts of trigger %s: %w", id, store.ErrNotFound)
	}
	// One statement, so one snapshot: the trigger's row, outer-joined to its
	// attempts, reads as no rows at all when there is no such trigger.
	rows, _ := s.pool.Query(ctx, `
		SELECT a.delivery_id, a.at, a.status, a.error, a.duration_us, a.next_at, a.test
		FROM herald.triggers tr
		LEFT JOIN LATERAL (SELECT * FROM herald.attempts WHERE trigger_id = tr.id ORDER BY seq DESC LIMIT $4) a ON true
		WHERE tr.`+triggerOfTopic+`
		ORDER BY a.seq DESC`, id, appID, topic, max(limit, 0))
	found := false
	out := []store.Attempt{}
	var (
		delivery, errText *string
		at, next          *time.Time
		status            *int
		durUS             *int64
		test              *bool
	)
	_, err := pgx.ForEachRow(rows, []any{&delivery, &at, &status, &errText, &durUS, &next, &test}, func() error {
		found = true
		if delivery == nil {
			return nil // no attempts yet
		}
		a := store.Attempt{TriggerID: id, DeliveryID: *delivery, At: at.UTC(), Status: *status, Error: *errText,
			Duration: time.Duration(*durUS) * time.Microsecond, Test: *test}
		if next != nil {
			a.NextAt = next.UTC()
		}
		out = append(out, a)
		return nil
	})
	if err == nil && !found {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("attempts of trigger %s: %w", id, interpretError(err))
	}
	return out, nil
}
