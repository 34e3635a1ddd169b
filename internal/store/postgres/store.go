package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/groupcommit"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// Options tunes a Store. The zero value is a good default.
type Options struct {
	// MaxConns bounds the pool, which the writer, the readers and whoever
	// else uses Pool share. 0 means 10; the writer needs one connection and
	// resolving a lost commit a second.
	MaxConns int32
	// Writers is how many batches of publishes may be in flight at once,
	// each on its own connection: while one commits, the next is already
	// being written, so the round trips of a commit do not leave the
	// database idle. That pays when publishes spread over many topics; when
	// they go to a few hot ones, the batches wait for each other's topic
	// locks, and one writer with larger batches does better (see
	// BenchmarkPublish). 0 means 1; it must be below MaxConns.
	Writers int
	// MaxBatch is the most publishes a writer commits in one transaction.
	// 0 means 512.
	MaxBatch int
	// MaxBatchBytes bounds the bodies of one batch, in bytes, so that a
	// batch of large messages stays one reasonable statement. The writer
	// stops adding publishes once the batch holds this much; a single
	// larger body still goes alone. 0 means 16 MiB.
	MaxBatchBytes int
	// PruneChunk is the most messages Prune deletes in one statement (and
	// so one transaction). 0 means 1000.
	PruneChunk int
	// WriteTimeout bounds one attempt at committing a batch, BeforeCommit
	// included, and then the time spent finding out whether a commit whose
	// connection was lost went through. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// BeforeCommit, if set, runs inside every publish transaction after the
	// messages are inserted and before COMMIT, with the messages of that
	// transaction ordered by (app, topic, id). An error rolls the whole
	// transaction back (no message stored, no id consumed) and every Publish
	// in it fails with that error wrapped. It must not commit or roll back
	// tx, and it runs on a writer goroutine, on several at once when
	// Writers is above 1 (each with its own transaction). It costs a round
	// trip of its own at least: a hook that only writes is better as
	// QueueBeforeCommitFunc.
	BeforeCommit func(ctx context.Context, tx pgx.Tx, msgs []store.Message) error
	// QueueBeforeCommitFunc, if set, queues on b statements for every
	// publish transaction, given its messages as BeforeCommit gets them.
	// They are sent in the round trip that inserts the messages, so unlike
	// BeforeCommit they cost no round trip of their own, but what they
	// return is not read. They commit or roll back with the messages; an
	// error, returned or from a queued statement, rolls the whole
	// transaction back and every Publish in it fails with that error
	// wrapped. It runs on a writer goroutine, on several at once when
	// Writers is above 1, before BeforeCommit. The cluster broadcaster
	// queues its pg_notify with it.
	QueueBeforeCommitFunc func(b *pgx.Batch, msgs []store.Message) error
}

// DefaultWriteTimeout is Options.WriteTimeout's default: far longer than
// any commit of a healthy database takes, short enough that a publish
// whose connection hung is answered (with ErrCommitUnknown at worst)
// before its client gives up.
const DefaultWriteTimeout = 30 * time.Second

// withDefaults returns o with zero fields set to their defaults, or an
// error for a field out of range.
func (o Options) withDefaults() (Options, error) {
	if o.MaxConns < 0 || o.Writers < 0 || o.MaxBatch < 0 || o.MaxBatchBytes < 0 || o.PruneChunk < 0 || o.WriteTimeout < 0 {
		return o, errors.New("options: negative value")
	}
	if o.MaxConns == 0 {
		o.MaxConns = 10
	}
	if o.MaxConns < 2 {
		return o, errors.New("options: MaxConns must be at least 2 (the writer, and a reader or the commit check)")
	}
	if o.Writers == 0 {
		o.Writers = 1
	}
	if o.Writers >= int(o.MaxConns) {
		return o, errors.New("options: Writers must be below MaxConns (a connection is left for the rest)")
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 512
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = 16 << 20
	}
	if o.PruneChunk == 0 {
		o.PruneChunk = 1000
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return o, nil
}

// Store is the Postgres store. It is safe for concurrent use, also by
// several processes on one database; after Close every method returns
// store.ErrClosed. See the package doc for how it writes.
type Store struct {
	opts Options
	pool *pgxpool.Pool

	// queue hands publishes to the writers, which commit them in groups.
	queue *groupcommit.Queue
	// pruner runs Prune and PruneDeliveries, limits the LimitStore
	// methods (see seam).
	pruner sqlstore.Pruner
	limits sqlstore.Limits
	// seq orders the writers' CommittedFunc calls (see sequencer).
	seq *sequencer
	// turns holds the token of the writer whose turn it is to gather a
	// batch (see groupcommit.Queue.RunTurns).
	turns chan struct{}
	// closing is closed by Close; the writer then returns after its
	// current batch.
	closing chan struct{}
	// wg counts the writer goroutines.
	wg sync.WaitGroup

	// mu guards closed. Every method but Publish holds it shared for its
	// whole run; Close takes it exclusively, so it waits for them.
	mu     sync.RWMutex
	closed bool
	// closeOnce makes Close run once.
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at databaseURL (a postgres:// URL or a
// key=value connection string, as pgx takes), refuses a hot standby, brings
// the schema herald up to date and starts the writer. The caller must Close
// the Store. Several Stores, in one process or many, may use one database
// at once: that is how a cluster runs.
func Open(ctx context.Context, databaseURL string, opts Options) (_ *Store, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx hides the password of what it could not parse.
		return nil, fmt.Errorf("postgres: database URL %s: %w", describe(databaseURL, nil), err)
	}
	where := describe(databaseURL, cfg)
	cfg.MaxConns = opts.MaxConns
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "herald"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", where, err)
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()

	var standby bool
	var version int
	// Unqualified on purpose: pg_catalog comes first in the search path
	// unless a role or URL lists it later, which is also how the tests give
	// this check a standby to see.
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('server_version_num')::int`).Scan(&standby, &version); err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", where, err)
	}
	if standby {
		return nil, fmt.Errorf("postgres: the database at %s is a read-only hot standby; point --database-url at the primary", where)
	}
	// pg_current_xact_id and pg_xact_status, which find out what became of a
	// commit whose connection was lost, came in 13.
	if version < 130000 {
		return nil, fmt.Errorf("postgres: the database at %s runs server version %d; Herald needs PostgreSQL 13 or newer", where, version)
	}
	if err := migrate(ctx, pool); err != nil {
		return nil, fmt.Errorf("postgres: migrate %s: %w", where, interpretError(err))
	}

	s := &Store{
		opts:    opts,
		pool:    pool,
		closing: make(chan struct{}),
		seq:     newSequencer(),
		turns:   make(chan struct{}, 1),
	}
	s.turns <- struct{}{}
	s.pruner = sqlstore.Pruner{DB: (*seam)(s), SQL: pruneSQL, Chunk: opts.PruneChunk, Closing: s.closing}
	s.limits = sqlstore.Limits{DB: (*seam)(s), SQL: limitsSQL}
	s.queue = groupcommit.New(s.closing, groupcommit.Options{MaxBatch: opts.MaxBatch, MaxBatchBytes: opts.MaxBatchBytes})
	for range opts.Writers {
		s.wg.Go(s.write)
	}
	return s, nil
}

// Pool returns the store's connection pool, for other parts of a cluster
// node that need the same database (to LISTEN, say). They must return every
// connection they take before Close, which closes the pool and waits for
// that. Tables are in the schema herald; nothing depends on the search path.
func (s *Store) Pool() *pgxpool.Pool {
	return s.pool
}

// Close stops the writer after its current batch, waits for the calls in
// progress and closes the pool. Publishes not yet taken by the writer get
// store.ErrClosed. It is safe to call more than once, also concurrently;
// calls after the first wait for it and return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// First, so that Publish stops handing requests to the writer and
		// a Prune in progress stops at its next chunk.
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wg.Wait()
		s.pool.Close()
	})
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

// storable reports whether Postgres can hold s as text: valid UTF-8 with no
// NUL. A name that is not cannot name anything stored, so lookups answer
// store.ErrNotFound without asking, and a publish batch never carries a
// value that would fail its statement, and with it every other publish in
// the batch.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// describe names the database at databaseURL for messages, without its
// password: a URL with the password hidden, or, for a key=value string, the
// parts of cfg that say where it points.
func describe(databaseURL string, cfg *pgxpool.Config) string {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		if u, err := url.Parse(databaseURL); err == nil {
			if q := u.Query(); q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.Redacted()
		}
		return "(unparseable URL)"
	}
	if cfg != nil {
		c := cfg.ConnConfig
		return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", c.Host, c.Port, c.Database, c.User)
	}
	return "(unparseable connection string)"
}

// nullTime returns t for a query argument, or nil (NULL) for the zero time,
// which the queries replace with the database's clock.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
