// Package pgtest gives each test a database of its own on the real Postgres
// that every development machine and CI runs (127.0.0.1:5432, trust auth),
// and drops it when the test ends. It is for tests only.
//
// HERALD_TEST_POSTGRES_URL overrides the server to use; it must name a
// database the test may connect to in order to create others (the default is
// the postgres database as the postgres user).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server tests use when HERALD_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// howToStart is the hint given when Postgres is not reachable: the test
// command starts it, and this is what it runs.
const howToStart = "Postgres is not reachable; ./scripts/test starts it when it is down " +
	"(or run: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), " +
	"or set HERALD_TEST_POSTGRES_URL to a server where tests may create databases"

// ServerURL is the URL of the server tests run against.
func ServerURL() string {
	if u := os.Getenv("HERALD_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database named after the test and returns its
// URL; the database is dropped (with its connections) when the test ends. A
// Postgres that cannot be reached fails the test, saying how to start it:
// these tests are never skipped.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	// Only reaching the server has a deadline, so that a Postgres that is
	// down fails fast with the hint. CREATE and DROP DATABASE wait for
	// checkpoints and other sessions' locks, which on a busy machine takes
	// longer than any fixed deadline would allow; go test's -timeout
	// bounds them.
	ctx := context.Background()
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	admin, err := pgx.Connect(connectCtx, ServerURL())
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v\n%s", redact(ServerURL()), err, howToStart)
	}
	defer admin.Close(context.Background())

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := unsafeChars.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = "herald_t_" + strings.Trim(name, "_") + "_" + hex.EncodeToString(suffix[:])
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	// Commits need not wait for the disk: no test crashes the database
	// server, and tests that commit thousands of times run many times
	// faster on a shared machine.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident+" SET synchronous_commit = off"); err != nil {
		tb.Fatalf("pgtest: configure database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(connectCtx, ServerURL())
		if err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(ServerURL())
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", redact(ServerURL()), err)
	}
	u.Path = "/" + name
	return u.String()
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Exec runs statements on the database at dbURL, failing the test on error.
// Tests use it to arrange faults (pg_terminate_backend) and inspect state.
func Exec(tb testing.TB, dbURL, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, fmt.Sprint(err))
	}
}
