package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	var raw []byte
	err := store.ErrNotFound
	if storable(appID) {
		err = s.pool.QueryRow(ctx,
			`SELECT l.limits FROM herald.apps a LEFT JOIN herald.app_limits l ON l.app_id = a.id WHERE a.id = $1`, appID).Scan(&raw)
	}
	if err != nil {
		return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, interpretError(err))
	}
	var l store.AppLimits
	if raw != nil {
		if err := json.Unmarshal(raw, &l); err != nil {
			return store.AppLimits{}, fmt.Errorf("app limits %s: %w", appID, err)
		}
	}
	return l, nil
}

// SetAppLimits replaces an app's limits, or returns store.ErrNotFound.
func (s *Store) SetAppLimits(ctx context.Context, appID string, l store.AppLimits) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	defer s.mu.RUnlock()
	if !storable(appID) {
		return fmt.Errorf("set app limits %s: %w", appID, store.ErrNotFound)
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO herald.app_limits (app_id, limits) VALUES ($1, $2)
			ON CONFLICT (app_id) DO UPDATE SET limits = excluded.limits`, appID, raw)
		return err
	})
	if err != nil {
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
	if !storable(appID) {
		return 0, nil
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM herald.triggers WHERE app_id = $1`, appID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count triggers %s: %w", appID, interpretError(err))
	}
	return n, nil
}
