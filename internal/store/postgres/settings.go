package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// LoadOrCreateSetting returns the install-wide setting name, storing
// candidate first if it has none; created reports whether this call stored
// it. Nodes starting together agree: exactly one candidate wins. The cluster
// keeps its generated admin token here, so that every node accepts it.
func (s *Store) LoadOrCreateSetting(ctx context.Context, name, candidate string) (value string, created bool, err error) {
	if err := s.enter(); err != nil {
		return "", false, fmt.Errorf("setting %s: %w", name, err)
	}
	defer s.mu.RUnlock()
	tag, err := s.pool.Exec(ctx, `INSERT INTO herald.settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, candidate)
	if err != nil {
		return "", false, fmt.Errorf("setting %s: %w", name, interpretError(err))
	}
	if tag.RowsAffected() == 1 {
		return candidate, true, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT value FROM herald.settings WHERE name = $1`, name).Scan(&value); err != nil {
		return "", false, fmt.Errorf("setting %s: %w", name, interpretError(err))
	}
	return value, false, nil
}

// Setting returns the install-wide setting name, or "" when it has none.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	if err := s.enter(); err != nil {
		return "", fmt.Errorf("setting %s: %w", name, err)
	}
	defer s.mu.RUnlock()
	var value string
	err := s.pool.QueryRow(ctx, `SELECT value FROM herald.settings WHERE name = $1`, name).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", name, interpretError(err))
	}
	return value, nil
}

// SetSetting stores value as the install-wide setting name, replacing any.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("set setting %s: %w", name, err)
	}
	defer s.mu.RUnlock()
	_, err := s.pool.Exec(ctx, `INSERT INTO herald.settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("set setting %s: %w", name, interpretError(err))
	}
	return nil
}
