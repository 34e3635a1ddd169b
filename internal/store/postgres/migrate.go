package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/internal/store/migration"
)

// migrationFS holds the schema migrations, one file each, named
// NNNN_what.sql. Applied versions are never edited; a change is a new file.
// (A package-level variable because go:embed needs one; nothing writes it.)
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the key of the advisory lock that Open holds while it
// migrates, so that nodes starting at once on one database take turns. It is
// "herald" in ASCII followed by 0x0001, unlikely to be another program's key.
const migrateLockKey int64 = 0x686572616c640001

// migrate brings the schema herald up to date in one transaction that holds
// a transaction-level advisory lock: a node that starts while another
// migrates waits for it, then finds the schema current. DDL in Postgres is
// transactional, so a crash leaves the schema as it was. When the schema is
// current, migrate only reads, so a role without CREATE privileges can run a
// node once the schema exists.
func migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	newest := ms[len(ms)-1].Version

	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
				err = errors.Join(err, rbErr)
			}
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	// to_regclass rather than CREATE … IF NOT EXISTS: CREATE SCHEMA checks
	// the privilege to create before it looks whether the schema exists.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('herald.schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return err
	}
	current := 0
	if exists {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM herald.schema_version`).Scan(&current); err != nil {
			return err
		}
	}
	if current > newest {
		return fmt.Errorf("schema version %d is newer than this build knows (%d)", current, newest)
	}
	if current == newest {
		return tx.Commit(ctx)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS herald`); err != nil {
			return fmt.Errorf("create schema herald: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE herald.schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
	}
	for _, m := range ms[current:] {
		// No arguments: pgx sends it with the simple protocol, which takes
		// several statements at once.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO herald.schema_version (version) VALUES ($1)`, m.Version); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return tx.Commit(ctx)
}
