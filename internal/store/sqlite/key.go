package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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

	scopes, err := joinScopes(k.Scopes)
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	hash := k.SecretHash
	if hash == nil {
		hash = []byte{}
	}
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO keys (id, app_id, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.AppID, hash, scopes, unixNano(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, interpretError(err))
	}
	return nil
}

// ListKeys returns an app's valid keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, appID string) (_ []store.Key, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("list keys of %s: %w", appID, interpretError(err))
		}
	}()

	// One read transaction, so the app's existence and its keys agree.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM apps WHERE id = ?`, appID).Scan(&one); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, scopes, created_at, last_used_at FROM keys
		WHERE app_id = ? AND revoked_at IS NULL ORDER BY created_at, rowid`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []store.Key{}
	for rows.Next() {
		k := store.Key{AppID: appID}
		var (
			scopes   string
			created  int64
			lastUsed sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &scopes, &created, &lastUsed); err != nil {
			return nil, err
		}
		k.Scopes = splitScopes(scopes)
		k.CreatedAt = fromUnixNano(created)
		if lastUsed.Valid {
			k.LastUsedAt = fromUnixNano(lastUsed.Int64)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeKey revokes a valid key of appID, or returns store.ErrNotFound.
func (s *Store) RevokeKey(ctx context.Context, appID, keyID string) (store.Revocation, error) {
	if err := s.enter(); err != nil {
		return store.Revocation{}, fmt.Errorf("revoke key: %w", err)
	}
	defer s.mu.RUnlock()

	now := time.Now().UTC()
	res, err := s.wdb.ExecContext(ctx, `UPDATE keys SET revoked_at = ? WHERE id = ? AND app_id = ? AND revoked_at IS NULL`,
		now.UnixNano(), keyID, appID)
	if err == nil {
		err = requireOneRow(res)
	}
	if err != nil {
		return store.Revocation{}, fmt.Errorf("revoke key %s: %w", keyID, interpretError(err))
	}
	return store.Revocation{KeyID: keyID, AppID: appID, RevokedAt: fromUnixNano(now.UnixNano())}, nil
}

// Revocations returns the revocations at or after since, oldest first, and
// the time it read them.
func (s *Store) Revocations(ctx context.Context, since time.Time) (_ []store.Revocation, _ time.Time, err error) {
	if err := s.enter(); err != nil {
		return nil, time.Time{}, fmt.Errorf("revocations: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("revocations: %w", interpretError(err))
		}
	}()

	// Read before the query: a revocation stamped later is seen next time.
	now := time.Now().UTC()
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, app_id, revoked_at FROM keys
		WHERE revoked_at IS NOT NULL AND revoked_at >= ? ORDER BY revoked_at`, since.UnixNano())
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	var revs []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var at int64
		if err := rows.Scan(&r.KeyID, &r.AppID, &at); err != nil {
			return nil, time.Time{}, err
		}
		r.RevokedAt = fromUnixNano(at)
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	return revs, now, nil
}

// TouchKeys records when keys were last used, in one transaction.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return fmt.Errorf("touch keys: %w", err)
	}
	defer s.mu.RUnlock()

	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for id, at := range used {
			n := at.UnixNano()
			if _, err := tx.ExecContext(ctx, `UPDATE keys SET last_used_at = ?
				WHERE id = ? AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < ?)`, n, id, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch keys: %w", interpretError(err))
	}
	return nil
}
