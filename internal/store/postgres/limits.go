package postgres

import (
	"context"
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
	return s.limits.AppLimits(ctx, appID)
}

// SetAppLimits replaces an app's limits, or returns store.ErrNotFound.
func (s *Store) SetAppLimits(ctx context.Context, appID string, l store.AppLimits) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("set app limits: %w", err)
	}
	defer s.mu.RUnlock()
	return s.limits.SetAppLimits(ctx, appID, l)
}

// CountTriggers returns how many triggers an app has.
func (s *Store) CountTriggers(ctx context.Context, appID string) (int, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("count triggers: %w", err)
	}
	defer s.mu.RUnlock()
	return s.limits.CountTriggers(ctx, appID)
}
