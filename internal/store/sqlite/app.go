package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// CreateApp creates an app with its first keys in one transaction. An app
// id or key id that already exists gives store.ErrConflict. Each key must
// belong to app (an empty AppID is taken to mean app). A zero CreatedAt is
// stored as now.
func (s *Store) CreateApp(ctx context.Context, app store.App, keys []store.Key) (err error) {
	if err := s.enter(); err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("create app: %w", interpretError(err))
		}
	}()

	scopes := make([]string, len(keys))
	for i, k := range keys {
		if k.AppID != "" && k.AppID != app.ID {
			return fmt.Errorf("key %s belongs to app %s, not %s", k.ID, k.AppID, app.ID)
		}
		if scopes[i], err = joinScopes(k.Scopes); err != nil {
			return fmt.Errorf("key %s: %w", k.ID, err)
		}
	}

	return s.writeTx(ctx, func(tx *sql.Tx) error {
		created := unixNano(app.CreatedAt)
		if _, err := tx.ExecContext(ctx, `INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)`,
			app.ID, app.Name, created); err != nil {
			return err
		}
		for i, k := range keys {
			keyCreated := created
			if !k.CreatedAt.IsZero() {
				keyCreated = k.CreatedAt.UnixNano()
			}
			hash := k.SecretHash
			if hash == nil {
				hash = []byte{}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO keys (id, app_id, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)`,
				k.ID, app.ID, hash, scopes[i], keyCreated); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListApps returns every app, oldest first (by CreatedAt, then by order of
// creation).
func (s *Store) ListApps(ctx context.Context) (_ []store.App, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	defer s.mu.RUnlock()

	rows, err := s.rdb.QueryContext(ctx, `SELECT id, name, created_at FROM apps ORDER BY created_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", interpretError(err))
	}
	defer rows.Close()
	var apps []store.App
	for rows.Next() {
		var app store.App
		var created int64
		if err := rows.Scan(&app.ID, &app.Name, &created); err != nil {
			return nil, fmt.Errorf("list apps: %w", interpretError(err))
		}
		app.CreatedAt = fromUnixNano(created)
		apps = append(apps, app)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list apps: %w", interpretError(err))
	}
	return apps, nil
}

// GetApp returns one app or store.ErrNotFound.
func (s *Store) GetApp(ctx context.Context, appID string) (store.App, error) {
	if err := s.enter(); err != nil {
		return store.App{}, fmt.Errorf("get app: %w", err)
	}
	defer s.mu.RUnlock()

	app := store.App{ID: appID}
	var created int64
	err := s.rdb.QueryRowContext(ctx, `SELECT name, created_at FROM apps WHERE id = ?`, appID).Scan(&app.Name, &created)
	if err != nil {
		return store.App{}, fmt.Errorf("get app %s: %w", appID, interpretError(err))
	}
	app.CreatedAt = fromUnixNano(created)
	return app, nil
}

// DeleteApp deletes an app with its keys, topics and history (foreign keys
// cascade), or returns store.ErrNotFound.
func (s *Store) DeleteApp(ctx context.Context, appID string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	defer s.mu.RUnlock()

	res, err := s.wdb.ExecContext(ctx, `DELETE FROM apps WHERE id = ?`, appID)
	if err == nil {
		err = requireOneRow(res)
	}
	if err != nil {
		return fmt.Errorf("delete app %s: %w", appID, interpretError(err))
	}
	return nil
}

// GetKey returns the key with this id or store.ErrNotFound.
func (s *Store) GetKey(ctx context.Context, keyID string) (store.Key, error) {
	if err := s.enter(); err != nil {
		return store.Key{}, fmt.Errorf("get key: %w", err)
	}
	defer s.mu.RUnlock()

	k := store.Key{ID: keyID}
	var scopes string
	var created int64
	err := s.stmts.getKey.QueryRowContext(ctx, keyID).Scan(&k.AppID, &k.SecretHash, &scopes, &created)
	if err != nil {
		return store.Key{}, fmt.Errorf("get key: %w", interpretError(err))
	}
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = fromUnixNano(created)
	return k, nil
}

// joinScopes encodes scopes as stored: joined by commas, in order.
func joinScopes(scopes []store.Scope) (string, error) {
	var b strings.Builder
	for i, sc := range scopes {
		if sc == "" || strings.Contains(string(sc), ",") {
			return "", fmt.Errorf("scope %q: must be non-empty and hold no comma", sc)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(sc))
	}
	return b.String(), nil
}

// splitScopes decodes scopes stored by joinScopes.
func splitScopes(s string) []store.Scope {
	if s == "" {
		return nil
	}
	n := strings.Count(s, ",") + 1
	out := make([]store.Scope, 0, n)
	for sc := range strings.SplitSeq(s, ",") {
		out = append(out, store.Scope(sc))
	}
	return out
}

// requireOneRow returns sql.ErrNoRows unless the statement changed a row.
func requireOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

// writeTx runs fn in a transaction on the write connection and commits it,
// or rolls it back if fn fails.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				err = errors.Join(err, rbErr)
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
