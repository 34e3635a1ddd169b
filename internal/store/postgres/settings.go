package postgres

import (
	"context"
	"fmt"
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
