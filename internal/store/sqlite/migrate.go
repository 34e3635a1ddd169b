package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store/migration"
)

// migrationFS holds the schema migrations, one file each, named
// NNNN_what.sql. Applied versions are never edited; a change is a new file.
// (A package-level variable because go:embed needs one; nothing writes it.)
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate brings the schema of db up to date. Each migration runs in its own
// immediate transaction together with its row in schema_version, so a crash
// leaves the schema at a version boundary and two processes opening one file
// at once apply each migration once.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for _, m := range ms {
		if err := apply(ctx, db, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return err
	}
	if newest := ms[len(ms)-1].Version; current > newest {
		return fmt.Errorf("schema version %d is newer than this build knows (%d)", current, newest)
	}
	return nil
}

// apply runs m unless schema_version says it ran already.
func apply(ctx context.Context, db *sql.DB, m migration.Migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	var done bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = ?)`, m.Version).Scan(&done); err != nil {
		return err
	}
	if done {
		return tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`, m.Version, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
