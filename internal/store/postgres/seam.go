package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

// seam is the store as sqlstore sees it: the SQL and the driver calls of
// the logic both stores share. A type of its own keeps these methods out of
// Store's.
type seam Store

var (
	_ sqlstore.PruneDB   = (*seam)(nil)
	_ sqlstore.HistoryDB = (*seam)(nil)
)

// pruneSQL is the SQL of the shared prune logic.
var pruneSQL = sqlstore.PruneSQL{
	Keys: `DELETE FROM herald.idempotency WHERE (app_id, key) IN (
		SELECT app_id, key FROM herald.idempotency WHERE created_at <= $1 LIMIT $2)`,
	Topics: pruneTopicsQuery,
	Delivered: `DELETE FROM herald.deliveries WHERE id IN (
		SELECT id FROM herald.deliveries WHERE state = 'delivered' AND updated_at < $1 LIMIT $2)`,
	Dead: `DELETE FROM herald.deliveries WHERE id IN (
		SELECT id FROM herald.deliveries WHERE state = 'dead' AND updated_at < $1 LIMIT $2)`,
	Attempts: `DELETE FROM herald.attempts WHERE seq IN (
		SELECT seq FROM herald.attempts WHERE at < $1 LIMIT $2)`,
}

// Exec runs a DELETE on the pool, a transaction of its own.
func (d *seam) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, query, args...)
	if err != nil {
		return 0, interpretError(err)
	}
	return tag.RowsAffected(), nil
}

// QueryIDs runs query on the pool.
func (d *seam) QueryIDs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := d.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, interpretError(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, interpretError(err)
}

// PruneTopic runs pruneQuery, one statement: the topic's last id is kept in
// its row, which no delete touches.
func (d *seam) PruneTopic(ctx context.Context, topicID, keep int64, cutoff any, chunk int64) (int64, error) {
	return d.Exec(ctx, pruneQuery, topicID, keep, cutoff, chunk)
}

// Before rounds t up to the microsecond. Stamps are whole microseconds, so
// for a stamp p, p < the rounded bound exactly when p is before t; pgx would
// otherwise drop the nanoseconds, and a message a nanosecond past its age
// would stay.
func (d *seam) Before(t time.Time) any {
	if down := t.Truncate(time.Microsecond); !down.Equal(t) {
		return down.Add(time.Microsecond)
	}
	return t
}

// NotAfter rounds t down to the microsecond: for a whole-microsecond stamp
// p, p <= the rounded bound exactly when p is not after t.
func (d *seam) NotAfter(t time.Time) any {
	return t.Truncate(time.Microsecond)
}

// TopicExists reads the topic.
func (d *seam) TopicExists(ctx context.Context, appID, topic string) error {
	_, err := (*Store)(d).getTopic(ctx, appID, topic)
	return interpretError(err)
}

// HistoryRows runs historyQuery. A name Postgres cannot hold as text
// names no topic.
func (d *seam) HistoryRows(ctx context.Context, appID, topic string, after int64, limit int) (sqlstore.HistoryRows, error) {
	if !storable(appID) || !storable(topic) {
		return nil, store.ErrNotFound
	}
	rows, err := d.pool.Query(ctx, historyQuery, appID, topic, after, limit)
	if err != nil {
		return nil, interpretError(err)
	}
	return historyRows{rows}, nil
}

// historyRows reads the rows of historyQuery.
type historyRows struct{ rows pgx.Rows }

func (r historyRows) Next() bool { return r.rows.Next() }

func (r historyRows) Message() (int64, []byte, time.Time, bool, error) {
	var id *int64
	var body []byte
	var published *time.Time
	if err := r.rows.Scan(&id, &body, &published); err != nil {
		return 0, nil, time.Time{}, false, interpretError(err)
	}
	if id == nil {
		return 0, nil, time.Time{}, false, nil
	}
	return *id, body, published.UTC(), true, nil
}

func (r historyRows) Err() error { return interpretError(r.rows.Err()) }

func (r historyRows) Close() { r.rows.Close() }

var _ sqlstore.LimitsDB = (*seam)(nil)

// limitsSQL is the SQL of the shared limits logic.
var limitsSQL = sqlstore.LimitsSQL{
	Get: `SELECT l.limits FROM herald.apps a LEFT JOIN herald.app_limits l ON l.app_id = a.id WHERE a.id = $1`,
	Set: `INSERT INTO herald.app_limits (app_id, limits) VALUES ($1, $2::jsonb)
		ON CONFLICT (app_id) DO UPDATE SET limits = excluded.limits`,
	CountTriggers: `SELECT count(*) FROM herald.triggers WHERE app_id = $1`,
	CountTopicTriggers: `SELECT count(*) FROM herald.triggers tr JOIN herald.topics t ON t.id = tr.topic_id
		WHERE t.app_id = $1 AND t.name = $2`,
}

// QueryRow runs query on the pool.
func (d *seam) QueryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return interpretError(d.pool.QueryRow(ctx, query, args...).Scan(dest...))
}

// ExecWrite runs query in a transaction, retried as writeTx retries.
func (d *seam) ExecWrite(ctx context.Context, query string, args ...any) error {
	return interpretError((*Store)(d).writeTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}))
}

// Holds reports whether Postgres can hold name as text (see storable).
func (d *seam) Holds(name string) bool { return storable(name) }
