package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.LimitStore = (*Store)(nil)

// AppLimits returns an app's limits (all zero if it never had its own),
// or store.ErrNotFound.
func (s *Store) AppLimits(ctx context.Context, appID string) (store.AppLimits, error) {
	if err := s.enter(); err != nil {
		return store.AppLimits{}, fmt.Errorf("app limits: %w", err)
	}
	defer s.mu.RUnlock()
	var raw sql.NullString
	err := s.rdb.QueryRowContext(ctx,
		`SELECT l.limits FROM apps a LEFT JOIN app_limits l ON l.app_id = a.id WHERE a.id = ?`, appID).Scan(&raw)
	if err != nil {
		return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, interpretError(err))
	}
	var l store.AppLimits
	if raw.Valid {
		if err := json.Unmarshal([]byte(raw.String), &l); err != nil {
			return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, err)
		}
	}
	return l, nil
}

// SetAppLimits replaces an app's limits, or returns store.ErrNotFound.
func (s *Store) SetAppLimits(ctx context.Context, appID string, l store.AppLimits) (err error) {
	if err := s.enter(); err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	defer s.mu.RUnlock()
	raw, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO app_limits (app_id, limits) VALUES (?, ?)
			ON CONFLICT (app_id) DO UPDATE SET limits = excluded.limits`, appID, string(raw))
		return err
	})
	if err != nil {
		// A missing app fails the foreign key: store.ErrNotFound.
		return fmt.Errorf("set app limits %s: %w", appID, interpretError(err))
	}
	return nil
}

// CountTriggers returns how many triggers an app has.
func (s *Store) CountTriggers(ctx context.Context, appID string) (int, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("count triggers: %w", err)
	}
	defer s.mu.RUnlock()
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM triggers WHERE app_id = ?`, appID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count triggers %s: %w", appID, interpretError(err))
	}
	return n, nil
}
