package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.Keys = (*Store)(nil)

// CreateKey adds a key to its app. An unknown app gives store.ErrNotFound
// (the foreign key), a key id that exists or existed store.ErrConflict.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	defer s.mu.RUnlock()

	err := store.ErrNotFound
	if storable(k.ID) && storable(k.AppID) {
		hash := k.SecretHash
		if hash == nil {
			hash = []byte{} // NOT NULL; the store does not judge hashes
		}
		_, err = s.pool.Exec(ctx, `INSERT INTO herald.keys (id, app_id, secret_hash, scopes, created_at)
			VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))`,
			k.ID, k.AppID, hash, scopeStrings(k.Scopes), nullTime(k.CreatedAt))
	}
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, interpretError(err))
	}
	return nil
}

// ListKeys returns an app's valid keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, appID string) ([]store.Key, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer s.mu.RUnlock()

	if !storable(appID) {
		return nil, fmt.Errorf("list keys of %s: %w", appID, store.ErrNotFound)
	}
	// The app row is joined so that, in one statement, an unknown app reads
	// as no rows at all and an app without keys as one row of NULLs.
	rows, _ := s.pool.Query(ctx, `SELECT k.id, k.scopes, k.created_at, k.last_used_at
		FROM herald.apps a LEFT JOIN herald.keys k ON k.app_id = a.id AND k.revoked_at IS NULL
		WHERE a.id = $1 ORDER BY k.created_at, k.id`, appID)
	found := false
	keys := []store.Key{}
	var (
		id                *string
		scopes            []string
		created, lastUsed *time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &scopes, &created, &lastUsed}, func() error {
		found = true
		if id == nil {
			return nil // the app has no keys
		}
		k := store.Key{ID: *id, AppID: appID, Scopes: toScopes(scopes), CreatedAt: created.UTC()}
		if lastUsed != nil {
			k.LastUsedAt = lastUsed.UTC()
		}
		keys = append(keys, k)
		return nil
	})
	if err == nil && !found {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("list keys of %s: %w", appID, interpretError(err))
	}
	return keys, nil
}

// RevokeKey revokes a valid key of appID, or returns store.ErrNotFound.
// The time is the database's clock, which every node's Revocations reads.
func (s *Store) RevokeKey(ctx context.Context, appID, keyID string) (store.Revocation, error) {
	if err := s.enter(); err != nil {
		return store.Revocation{}, fmt.Errorf("revoke key: %w", err)
	}
	defer s.mu.RUnlock()

	r := store.Revocation{KeyID: keyID, AppID: appID}
	err := store.ErrNotFound
	if storable(appID) && storable(keyID) {
		// clock_timestamp, not now: the stamp is as close to the commit as
		// a statement can get, which keeps the readers' margin small.
		err = s.pool.QueryRow(ctx, `UPDATE herald.keys SET revoked_at = clock_timestamp()
			WHERE id = $1 AND app_id = $2 AND revoked_at IS NULL RETURNING revoked_at`, keyID, appID).Scan(&r.RevokedAt)
	}
	if err != nil {
		return store.Revocation{}, fmt.Errorf("revoke key %s: %w", keyID, interpretError(err))
	}
	r.RevokedAt = r.RevokedAt.UTC()
	return r, nil
}

// Revocations returns the revocations at or after since, oldest first, and
// the database's clock as the statement started.
func (s *Store) Revocations(ctx context.Context, since time.Time) ([]store.Revocation, time.Time, error) {
	if err := s.enter(); err != nil {
		return nil, time.Time{}, fmt.Errorf("revocations: %w", err)
	}
	defer s.mu.RUnlock()

	// The clock comes with the rows, in the same snapshot: a revocation
	// stamped before it but committed after is what the caller's margin is
	// for. The UNION ALL row carries the clock when no key matches.
	rows, _ := s.pool.Query(ctx, `SELECT id, app_id, revoked_at, statement_timestamp() FROM herald.keys
		WHERE revoked_at IS NOT NULL AND revoked_at >= $1
		UNION ALL SELECT NULL, NULL, NULL, statement_timestamp()
		ORDER BY 3 NULLS LAST`, since)
	var (
		revs      []store.Revocation
		now       time.Time
		id, app   *string
		at        *time.Time
		stmtClock time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &app, &at, &stmtClock}, func() error {
		now = stmtClock
		if id != nil {
			revs = append(revs, store.Revocation{KeyID: *id, AppID: *app, RevokedAt: at.UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("revocations: %w", interpretError(err))
	}
	return revs, now.UTC(), nil
}

// TouchKeys records when keys were last used, in one statement.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return fmt.Errorf("touch keys: %w", err)
	}
	defer s.mu.RUnlock()

	ids := make([]string, 0, len(used))
	ats := make([]time.Time, 0, len(used))
	for id, at := range used {
		if storable(id) {
			ids = append(ids, id)
			ats = append(ats, at)
		}
	}
	_, err := s.pool.Exec(ctx, `UPDATE herald.keys k SET last_used_at = u.at
		FROM unnest($1::text[], $2::timestamptz[]) AS u (id, at)
		WHERE k.id = u.id AND k.revoked_at IS NULL AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`, ids, ats)
	if err != nil {
		return fmt.Errorf("touch keys: %w", interpretError(err))
	}
	return nil
}

// scopeStrings is scopes as stored: a text array in the order given.
func scopeStrings(scopes []store.Scope) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = string(sc)
	}
	return out
}

// toScopes reads scopes as stored.
func toScopes(ss []string) []store.Scope {
	if len(ss) == 0 {
		return nil
	}
	out := make([]store.Scope, len(ss))
	for i, sc := range ss {
		out[i] = store.Scope(sc)
	}
	return out
}
