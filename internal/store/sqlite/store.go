package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// Options tunes a Store. The zero value is a good default.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection (another process, or a checkpoint) before it fails.
	// 0 means 5s.
	BusyTimeout time.Duration
	// ReadConns is how many read-only connections serve reads at once.
	// 0 means GOMAXPROCS, at least 4.
	ReadConns int
	// MaxBatch is the most publishes the writer commits in one transaction.
	// 0 means 256.
	MaxBatch int
	// PruneChunk is the most messages Prune deletes in one transaction, so
	// that it never holds the write connection for long. 0 means 1000.
	PruneChunk int
}

// withDefaults returns o with zero fields set to their defaults, or an
// error for a field out of range.
func (o Options) withDefaults() (Options, error) {
	if o.BusyTimeout < 0 || o.ReadConns < 0 || o.MaxBatch < 0 || o.PruneChunk < 0 {
		return o, errors.New("options: negative value")
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns == 0 {
		o.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 256
	}
	if o.PruneChunk == 0 {
		o.PruneChunk = 1000
	}
	return o, nil
}

// Store is the SQLite store. It is safe for concurrent use; after Close
// every method returns store.ErrClosed. See the package doc for how it
// writes.
type Store struct {
	opts Options
	// wdb has exactly one connection, used for every write.
	wdb *sql.DB
	// rdb is the pool of read-only connections.
	rdb *sql.DB
	// cdb has the one connection the checkpointer uses.
	cdb *sql.DB
	// stmts are the statements prepared at Open for the hot paths.
	stmts statements
	// pruner runs Prune and PruneDeliveries, limits the LimitStore
	// methods (see seam).
	pruner sqlstore.Pruner
	limits sqlstore.Limits

	// queue hands publishes to the writer, which commits them in groups.
	queue *groupcommit.Queue
	// checkpointc wakes the checkpointer; it has room for one wake-up.
	checkpointc chan struct{}
	// closing is closed by Close; the writer and the checkpointer then
	// return.
	closing chan struct{}
	// wg counts the writer and the checkpointer goroutines.
	wg sync.WaitGroup

	// mu guards closed. Every method but Publish holds it shared for its
	// whole run; Close takes it exclusively, so it waits for them.
	mu     sync.RWMutex
	closed bool
	// closeOnce makes Close run once.
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens the database file at path, creating it if needed, brings its
// schema up to date and starts the writer and the checkpointer. The caller
// must Close the Store. The file should be opened by one Store at a time:
// two would work, as SQLite locks, but contend for the write lock.
//
// The file is in WAL mode with synchronous=NORMAL: a transaction that has
// committed survives a crash of the process; only an operating system crash
// or a power loss can lose the last transactions committed before it.
func Open(ctx context.Context, path string, opts Options) (_ *Store, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	s := &Store{
		opts:        opts,
		checkpointc: make(chan struct{}, 1),
		closing:     make(chan struct{}),
	}
	s.queue = groupcommit.New(s.closing, groupcommit.Options{MaxBatch: opts.MaxBatch})
	s.pruner = sqlstore.Pruner{DB: (*seam)(s), SQL: pruneSQL, Chunk: opts.PruneChunk, Closing: s.closing}
	s.limits = sqlstore.Limits{DB: (*seam)(s), SQL: limitsSQL}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeDBs())
		}
	}()

	if s.wdb, err = sql.Open("sqlite", dsn(abs, opts, false)); err != nil {
		return nil, err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	var mode string
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return nil, interpretError(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("journal mode is %q, not wal: does the file system support WAL?", mode)
	}
	if err := migrate(ctx, s.wdb); err != nil {
		return nil, fmt.Errorf("migrate: %w", interpretError(err))
	}

	if s.rdb, err = sql.Open("sqlite", dsn(abs, opts, true)); err != nil {
		return nil, err
	}
	s.rdb.SetMaxOpenConns(opts.ReadConns)
	s.rdb.SetMaxIdleConns(opts.ReadConns)
	if err := s.rdb.PingContext(ctx); err != nil {
		return nil, interpretError(err)
	}

	if s.cdb, err = sql.Open("sqlite", dsn(abs, opts, false)); err != nil {
		return nil, err
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)

	if err := s.stmts.prepare(ctx, s.wdb, s.rdb); err != nil {
		return nil, fmt.Errorf("prepare: %w", interpretError(err))
	}
	s.wg.Go(s.write)
	s.wg.Go(s.checkpoint)
	return s, nil
}

// dsn returns the modernc.org/sqlite data source name for the file at the
// absolute path abs: a file: URI, so that any path works, with the pragmas
// every connection needs.
func dsn(abs string, opts Options, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Takes effect only when the file is created (a file made with
		// another size keeps it). A commit appends each page it dirtied to
		// the WAL and checksums it, so a page's size is paid once per
		// commit per page: a small batch dirties a page or two of messages
		// (and a few of the outbox with triggers), and splits, which
		// smaller pages make more frequent, dirty a few more only now and
		// then. SQLite's default, 4096, cost a publish alone 0.79x the CPU
		// of 16384 (BenchmarkPublishSerial), and with a trigger took 1.29x
		// the publishes/s (BenchmarkPublishTriggers).
		q.Add("_pragma", "page_size(4096)")
		// journal_mode as its own parameter is applied after the _pragma
		// list, so after page_size, which cannot change once the file is
		// in WAL mode.
		q.Set("_journal_mode", "WAL")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutoCheckpoint))
		// Take the write lock at BEGIN, not at the first write, so a
		// transaction never fails to upgrade its lock halfway.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true, RawQuery: q.Encode()}
	return u.String()
}

// Close stops the writer after its current batch, waits for the calls in
// progress and closes the file. It is safe to call more than once, also
// concurrently; calls after the first wait for it and return nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// First, so that Publish stops handing requests to the writer and
		// a Prune in progress stops at its next chunk.
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wg.Wait()
		err = s.closeDBs()
	})
	return err
}

// closeDBs closes the statements and the pools, whichever are open; the
// write pool last, so that its connection, the last one to the file,
// checkpoints the WAL and deletes it.
func (s *Store) closeDBs() error {
	errs := []error{s.stmts.close()}
	for _, db := range []*sql.DB{s.cdb, s.rdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", interpretError(err))
	}
	return nil
}

// enter starts a call of a method other than Publish: it returns
// store.ErrClosed after Close, and otherwise holds s.mu shared until the
// caller calls s.mu.RUnlock.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// unixNano returns t as stored: unix nanoseconds, or now for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return time.Now().UnixNano()
	}
	return t.UnixNano()
}

// fromUnixNano returns a stored time as a UTC time.Time.
func fromUnixNano(n int64) time.Time {
	return time.Unix(0, n).UTC()
}

// statements are the prepared statements of the hot paths but the
// writer's, which prepares its own (see wconn). Those on the write pool are
// used inside transactions with tx.Stmt, which reuses the one connection's
// prepared statement.
type statements struct {
	// raiseFloor sets a topic's last_id to its newest message's id, if
	// greater: arg topic row id.
	raiseFloor *sql.Stmt
	// prune deletes a chunk of a topic's messages outside the retention:
	// args topic row id, keep, cutoff (unix nanoseconds), chunk size.
	prune *sql.Stmt
	// getKey reads a key: arg key id.
	getKey *sql.Stmt
	// getTopic reads a topic: args app id, name.
	getTopic *sql.Stmt
	// history reads messages: args app id, topic name, after, limit.
	history *sql.Stmt
	// anyDue tells whether a delivery is due: arg now.
	anyDue *sql.Stmt
}

// prepare prepares every statement.
func (st *statements) prepare(ctx context.Context, wdb, rdb *sql.DB) error {
	for _, p := range []struct {
		db    *sql.DB
		stmt  **sql.Stmt
		query string
	}{
		{wdb, &st.raiseFloor, raiseFloorQuery},
		{wdb, &st.prune, pruneQuery},
		{rdb, &st.getKey, `SELECT app_id, secret_hash, scopes, created_at FROM keys WHERE id = ?1 AND revoked_at IS NULL`},
		{rdb, &st.getTopic, getTopicQuery},
		{rdb, &st.history, historyQuery},
		{rdb, &st.anyDue, anyDueQuery},
	} {
		stmt, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return err
		}
		*p.stmt = stmt
	}
	return nil
}

// close closes the statements that were prepared.
func (st *statements) close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{
		st.raiseFloor, st.prune, st.getKey, st.getTopic, st.history, st.anyDue,
	} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}
