package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// CreateApp creates an app with its first keys in one transaction. An app
// id or key id that already exists gives store.ErrConflict. Each key must
// belong to app (an empty AppID is taken to mean app). A zero CreatedAt is
// stored as the database's now; a key's zero CreatedAt as its app's.
func (s *Store) CreateApp(ctx context.Context, app store.App, keys []store.Key) (err error) {
	if err := s.enter(); err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("create app %s: %w", app.ID, interpretError(err))
		}
	}()

	for _, k := range keys {
		if k.AppID != "" && k.AppID != app.ID {
			return fmt.Errorf("key %s belongs to app %s, not %s", k.ID, k.AppID, app.ID)
		}
	}
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		var created time.Time
		if err := tx.QueryRow(ctx, `INSERT INTO herald.apps (id, name, created_at) VALUES ($1, $2, coalesce($3::timestamptz, now()))
			RETURNING created_at`, app.ID, app.Name, nullTime(app.CreatedAt)).Scan(&created); err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		// One round trip for all the keys.
		var b pgx.Batch
		for _, k := range keys {
			keyCreated := created
			if !k.CreatedAt.IsZero() {
				keyCreated = k.CreatedAt
			}
			hash := k.SecretHash
			if hash == nil {
				hash = []byte{} // NOT NULL; the store does not judge hashes
			}
			scopes := make([]string, len(k.Scopes))
			for i, sc := range k.Scopes {
				scopes[i] = string(sc)
			}
			b.Queue(`INSERT INTO herald.keys (id, app_id, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)`,
				k.ID, app.ID, hash, scopes, keyCreated)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}

// ListApps returns every app, oldest first (by CreatedAt, then by order of
// creation).
func (s *Store) ListApps(ctx context.Context) ([]store.App, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	defer s.mu.RUnlock()

	rows, _ := s.pool.Query(ctx, `SELECT id, name, created_at FROM herald.apps ORDER BY created_at, seq`)
	apps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.App, error) {
		var app store.App
		err := row.Scan(&app.ID, &app.Name, &app.CreatedAt)
		app.CreatedAt = app.CreatedAt.UTC()
		return app, err
	})
	if err != nil {
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
	err := store.ErrNotFound
	if storable(appID) {
		err = s.pool.QueryRow(ctx, `SELECT name, created_at FROM herald.apps WHERE id = $1`, appID).Scan(&app.Name, &app.CreatedAt)
	}
	if err != nil {
		return store.App{}, fmt.Errorf("get app %s: %w", appID, interpretError(err))
	}
	app.CreatedAt = app.CreatedAt.UTC()
	return app, nil
}

// DeleteApp deletes an app with its keys, topics and history (foreign keys
// cascade, but for the history: see deleteHistory), or returns
// store.ErrNotFound. It is one transaction, so an app with a long history
// takes as long as it takes to delete it. It locks the app's row first,
// which no topic can be created under, so the topics it deletes are all
// the app's.
func (s *Store) DeleteApp(ctx context.Context, appID string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	defer s.mu.RUnlock()

	err := store.ErrNotFound
	if storable(appID) {
		err = s.writeTx(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `SELECT FROM herald.apps WHERE id = $1 FOR UPDATE`, appID)
			if err == nil && tag.RowsAffected() == 0 {
				err = store.ErrNotFound
			}
			if err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `DELETE FROM herald.topics WHERE app_id = $1 RETURNING id`, appID)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			if err := deleteHistory(ctx, tx, ids); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `DELETE FROM herald.apps WHERE id = $1`, appID)
			return err
		})
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
	var scopes []string
	err := store.ErrNotFound
	if storable(keyID) {
		err = s.pool.QueryRow(ctx, `SELECT app_id, secret_hash, scopes, created_at FROM herald.keys WHERE id = $1 AND revoked_at IS NULL`, keyID).
			Scan(&k.AppID, &k.SecretHash, &scopes, &k.CreatedAt)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("get key: %w", interpretError(err))
	}
	if len(scopes) > 0 {
		k.Scopes = make([]store.Scope, len(scopes))
		for i, sc := range scopes {
			k.Scopes[i] = store.Scope(sc)
		}
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// maxTxAttempts is how many times writeTx and the writer run a transaction
// that Postgres rolled back for a serialization failure or a deadlock.
const maxTxAttempts = 5

// writeTx runs fn in a transaction and commits it, or rolls it back if fn
// fails. A transaction rolled back for a deadlock (say DeleteApp's cascade
// meeting a publish batch's topic locks) runs again, up to maxTxAttempts.
func (s *Store) writeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || attempt == maxTxAttempts || !retryable(err) {
			return err
		}
	}
}
