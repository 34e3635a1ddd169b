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
	// down fails fast with the hint. CREATE DATABASE waits for checkpoints
	// and other sessions' locks, which on a busy machine takes longer than
	// any fixed deadline would allow; go test's -timeout bounds it. The
	// drop at cleanup retries within a generous budget (dropDatabase).
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
		if err := dropDatabase(name, dropBudget); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})

	u, err := url.Parse(ServerURL())
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", redact(ServerURL()), err)
	}
	u.Path = "/" + name
	return u.String()
}

// dropBudget is how long a test's cleanup keeps trying to drop its
// database. On a busy machine one attempt can fail for reasons that pass
// (a connect that times out, the server out of connection slots while
// other tests' pools close, a lock held by a concurrent CREATE DATABASE), so
// the drop is retried; a database that still cannot be dropped after this
// long fails the test.
const dropBudget = 3 * time.Minute

// dropAttempt bounds one attempt, connect and DROP together. The budget, not
// this bound, is what decides failure, so it is generous: an attempt cut off
// while Postgres is merely slow is retried anyway.
const dropAttempt = time.Minute

// dropDatabase drops the database name with its connections, retrying until
// it is gone or budget has passed. It returns the last error, with the
// number of attempts, if the database could not be dropped.
func dropDatabase(name string, budget time.Duration) error {
	deadline := time.Now().Add(budget)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := dropOnce(name, min(dropAttempt, max(time.Until(deadline), time.Second)))
		if err == nil {
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("drop database %s: gave up after %d attempts in %v: %w", name, attempt, budget, err)
		}
		// Give the server a moment (other tests' connections closing)
		// before the next attempt.
		<-time.After(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// dropOnce makes one attempt to drop the database name, within timeout.
func dropOnce(name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(ServerURL()), err)
	}
	defer c.Close(context.Background())
	// IF EXISTS: an earlier attempt whose reply was lost may have dropped
	// it. FORCE ends sessions still connected (a pool closing, a listener).
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
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
