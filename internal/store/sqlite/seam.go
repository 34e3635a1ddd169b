package sqlite

import (
	"context"
	"database/sql"
	"math"
	"time"

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

// pruneSQL is the SQL of the shared prune logic. The deliveries go by
// rowid, their table's own b-tree.
var pruneSQL = sqlstore.PruneSQL{
	Keys: `DELETE FROM idempotency WHERE (app_id, key) IN (
		SELECT app_id, key FROM idempotency WHERE created_at <= ?1 LIMIT ?2)`,
	Topics: pruneTopicsQuery,
	Delivered: `DELETE FROM deliveries WHERE rowid IN (
		SELECT rowid FROM deliveries WHERE state = 'delivered' AND updated_at < ?1 LIMIT ?2)`,
	Dead: `DELETE FROM deliveries WHERE rowid IN (
		SELECT rowid FROM deliveries WHERE state = 'dead' AND updated_at < ?1 LIMIT ?2)`,
	Attempts: `DELETE FROM attempts WHERE seq IN (
		SELECT seq FROM attempts WHERE at < ?1 LIMIT ?2)`,
}

// Exec runs a DELETE on the write connection, a transaction of its own.
func (d *seam) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.wdb.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, interpretError(err)
	}
	n, err := res.RowsAffected()
	return n, interpretError(err)
}

// QueryIDs runs query on the read pool.
func (d *seam) QueryIDs(ctx context.Context, query string, args ...any) (_ []int64, err error) {
	defer func() { err = interpretError(err) }()
	rows, err := d.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// PruneTopic raises the topic's stored last id to its newest message's id
// (a topic's last id is the greater of the two, see lastIDExpr, and must
// not go down when its newest message goes), then deletes a chunk, in one
// transaction.
func (d *seam) PruneTopic(ctx context.Context, topicID, keep int64, cutoff any, chunk int64) (int64, error) {
	s := (*Store)(d)
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.stmts.raiseFloor).ExecContext(ctx, topicID); err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, s.stmts.prune).ExecContext(ctx, topicID, keep, cutoff, chunk)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, interpretError(err)
	}
	return n, nil
}

// Before returns t in unix nanoseconds, the stamps' own unit, within the
// range a stamp has.
func (d *seam) Before(t time.Time) any { return stampBound(t) }

// NotAfter is Before: stamps are exact in nanoseconds, so no rounding
// differs.
func (d *seam) NotAfter(t time.Time) any { return stampBound(t) }

// stampBound returns t in unix nanoseconds, clamped to the range a stored
// time has.
func stampBound(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// TopicExists reads the topic with the prepared statement.
func (d *seam) TopicExists(ctx context.Context, appID, topic string) error {
	var lastID, created int64
	return interpretError(d.stmts.getTopic.QueryRowContext(ctx, appID, topic).Scan(&lastID, &created))
}

// HistoryRows runs historyQuery, prepared on the read pool.
func (d *seam) HistoryRows(ctx context.Context, appID, topic string, after int64, limit int) (sqlstore.HistoryRows, error) {
	rows, err := d.stmts.history.QueryContext(ctx, appID, topic, after, limit)
	if err != nil {
		return nil, interpretError(err)
	}
	return historyRows{rows}, nil
}

// historyRows reads the rows of historyQuery.
type historyRows struct{ rows *sql.Rows }

func (r historyRows) Next() bool { return r.rows.Next() }

func (r historyRows) Message() (int64, []byte, time.Time, bool, error) {
	var id, published sql.NullInt64
	var body []byte
	if err := r.rows.Scan(&id, &body, &published); err != nil {
		return 0, nil, time.Time{}, false, interpretError(err)
	}
	return id.Int64, body, fromUnixNano(published.Int64), id.Valid, nil
}

func (r historyRows) Err() error { return interpretError(r.rows.Err()) }

// Close ignores the error of closing: the rows were read to the end or
// until the error History returns.
func (r historyRows) Close() { _ = r.rows.Close() }

var _ sqlstore.LimitsDB = (*seam)(nil)

// limitsSQL is the SQL of the shared limits logic.
var limitsSQL = sqlstore.LimitsSQL{
	Get: `SELECT l.limits FROM apps a LEFT JOIN app_limits l ON l.app_id = a.id WHERE a.id = ?1`,
	Set: `INSERT INTO app_limits (app_id, limits) VALUES (?1, ?2)
		ON CONFLICT (app_id) DO UPDATE SET limits = excluded.limits`,
	CountTriggers: `SELECT count(*) FROM triggers WHERE app_id = ?1`,
	CountTopicTriggers: `SELECT count(*) FROM triggers tr JOIN topics t ON t.id = tr.topic_id
		WHERE t.app_id = ?1 AND t.name = ?2`,
}

// QueryRow runs query on the read pool.
func (d *seam) QueryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return interpretError(d.rdb.QueryRowContext(ctx, query, args...).Scan(dest...))
}

// ExecWrite runs query in a transaction on the write connection.
func (d *seam) ExecWrite(ctx context.Context, query string, args ...any) error {
	return interpretError((*Store)(d).writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}))
}

// Holds is true: SQLite holds any string as text.
func (d *seam) Holds(string) bool { return true }
