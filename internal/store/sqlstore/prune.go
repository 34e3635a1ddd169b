package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// PruneSQL is a store's SQL for Pruner, in its own dialect. Every DELETE
// takes its cutoff as first argument and the most rows it may delete as
// last, so that one run never holds the write path for long.
type PruneSQL struct {
	// Keys deletes idempotency records created at or before the cutoff
	// (PruneDB.NotAfter), at most the limit.
	Keys string
	// Topics lists, after topic row id arg 1, up to arg 4 topics whose
	// oldest message is both older than the cutoff arg 3 (PruneDB.Before)
	// and not among the newest arg 2: the topics with work to do. It runs
	// on a read connection where the store has them.
	Topics string
	// Delivered and Dead delete deliveries in that state settled before
	// the cutoff (PruneDB.Before), at most the limit. The states are
	// literals in the SQL, not arguments, so that the partial index of
	// each serves every plan.
	Delivered, Dead string
	// Attempts deletes delivery attempts made before the cutoff
	// (PruneDB.Before), at most the limit.
	Attempts string
}

// PruneDB is what a store gives a Pruner: its driver calls. A Pruner calls
// it from the goroutine that called the Pruner. Errors come back already
// translated into the store's terms.
type PruneDB interface {
	// Exec runs query, a DELETE, with args as a transaction of its own on
	// the store's write path and returns how many rows it deleted.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryIDs runs query with args and returns the first column of each
	// row.
	QueryIDs(ctx context.Context, query string, args ...any) ([]int64, error)
	// PruneTopic deletes, in one transaction, up to chunk of the oldest
	// messages of topic row id topicID that are older than cutoff (a value
	// of Before) and not among its newest keep, without changing the
	// topic's last id, and returns how many it deleted. It is the store's
	// own because keeping the last id differs: SQLite derives it from the
	// messages and must raise the stored one first, Postgres keeps it.
	PruneTopic(ctx context.Context, topicID, keep int64, cutoff any, chunk int64) (int64, error)
	// Before returns t as a bound v on stored stamps such that a stamp
	// is < v exactly when it is before t (rounding up to the store's
	// resolution, clamping to its range).
	Before(t time.Time) any
	// NotAfter returns t as a bound v on stored stamps such that a stamp
	// is <= v exactly when it is not after t (rounding down).
	NotAfter(t time.Time) any
}

// Pruner deletes what the retention rules let go, in chunks, each a
// transaction of its own, so that publishes go on meanwhile. When it fails,
// what it deleted until then stays deleted.
type Pruner struct {
	// DB is the store's side of the seam.
	DB PruneDB
	// SQL is the store's prune statements.
	SQL PruneSQL
	// Chunk is the most rows one transaction deletes; it must be positive.
	Chunk int
	// Closing, once closed, stops a Pruner between chunks with
	// store.ErrClosed.
	Closing <-chan struct{}
}

// topicsPage is how many topics one run of PruneSQL.Topics lists.
const topicsPage = 1000

// Messages deletes the messages outside the retention r at now and returns
// how many. A message goes when it is older than r.MaxAge and not among the
// newest r.Keep of its topic (negative values count as 0). First it forgets
// the idempotency keys whose window (store.IdempotencyWindow) has ended at
// now: those created at or before now minus the window, which a publish
// already treats as unknown. No topic's last id changes.
func (p *Pruner) Messages(ctx context.Context, r store.Retention, now time.Time) (total int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := p.chunks(ctx, p.SQL.Keys, p.DB.NotAfter(now.Add(-store.IdempotencyWindow))); err != nil {
		return 0, fmt.Errorf("idempotency keys: %w", err)
	}
	keep := int64(max(r.Keep, 0))
	cutoff := p.DB.Before(now.Add(-max(r.MaxAge, 0)))
	chunk := int64(p.Chunk)
	var topics []int64
	for after := int64(0); ; after = topics[len(topics)-1] {
		if topics, err = p.DB.QueryIDs(ctx, p.SQL.Topics, after, keep, cutoff, topicsPage); err != nil {
			return total, fmt.Errorf("list topics: %w", err)
		}
		if len(topics) == 0 {
			return total, nil
		}
		for _, topicID := range topics {
			// A topic is done when a chunk deletes fewer than it may: what
			// follows is young, since stamps never decrease along ids.
			for {
				if err := p.open(); err != nil {
					return total, err
				}
				n, err := p.DB.PruneTopic(ctx, topicID, keep, cutoff, chunk)
				total += n
				if err != nil {
					return total, err
				}
				if n < chunk {
					break
				}
			}
		}
	}
}

// Deliveries deletes delivered deliveries settled before deliveredBefore
// and dead ones settled before deadBefore, and returns how many. Attempts go
// with the longer of the two retentions: a dead letter's attempts stay as
// long as it does.
func (p *Pruner) Deliveries(ctx context.Context, deliveredBefore, deadBefore time.Time) (total int64, err error) {
	for _, q := range []struct {
		query  string
		before time.Time
	}{
		{p.SQL.Delivered, deliveredBefore},
		{p.SQL.Dead, deadBefore},
	} {
		n, err := p.chunks(ctx, q.query, p.DB.Before(q.before))
		total += n
		if err != nil {
			return total, fmt.Errorf("prune deliveries: %w", err)
		}
	}
	cut := deliveredBefore
	if deadBefore.Before(cut) {
		cut = deadBefore
	}
	if _, err := p.chunks(ctx, p.SQL.Attempts, p.DB.Before(cut)); err != nil {
		return total, fmt.Errorf("prune attempts: %w", err)
	}
	return total, nil
}

// chunks runs query, a DELETE whose last argument is the most rows it
// deletes, with args and then Chunk, until it deletes fewer, and returns
// how many it deleted.
func (p *Pruner) chunks(ctx context.Context, query string, args ...any) (total int64, err error) {
	chunk := int64(p.Chunk)
	args = append(args, chunk)
	for {
		if err := p.open(); err != nil {
			return total, err
		}
		n, err := p.DB.Exec(ctx, query, args...)
		total += n
		if err != nil {
			return total, err
		}
		if n < chunk {
			return total, nil
		}
	}
}

// open returns store.ErrClosed once the store is closing: a Pruner stops
// between chunks, so that Close does not wait for a whole prune.
func (p *Pruner) open() error {
	select {
	case <-p.Closing:
		return store.ErrClosed
	default:
		return nil
	}
}
