package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.Nodes = (*Store)(nil)

// ReportNode replaces the node's report and deletes stale ones, in one
// transaction.
func (s *Store) ReportNode(ctx context.Context, r store.NodeReport, staleBefore time.Time) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("report node: %w", err)
	}
	defer s.mu.RUnlock()

	apps := make([]string, 0, len(r.Apps))
	figures := make([][]byte, 0, len(r.Apps))
	for app, f := range r.Apps {
		if storable(app) {
			apps = append(apps, app)
			figures = append(figures, f)
		}
	}
	err := fmt.Errorf("node id or address is not valid UTF-8 or holds NUL")
	if storable(r.NodeID) && storable(r.Addr) && storable(r.Reason) {
		err = s.writeTx(ctx, func(tx pgx.Tx) error {
			var b pgx.Batch
			b.Queue(`DELETE FROM herald.nodes WHERE id = $1 OR at < $2`, r.NodeID, staleBefore)
			b.Queue(`INSERT INTO herald.nodes (id, addr, ready, reason, at) VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))`,
				r.NodeID, r.Addr, r.Ready, r.Reason, nullTime(r.At))
			b.Queue(`INSERT INTO herald.node_apps (node_id, app_id, figures)
				SELECT $1, app, f FROM unnest($2::text[], $3::bytea[]) AS u (app, f)`, r.NodeID, apps, figures)
			return tx.SendBatch(ctx, &b).Close()
		})
	}
	if err != nil {
		return fmt.Errorf("report node %s: %w", r.NodeID, interpretError(err))
	}
	return nil
}

// NodeReports returns the reports made at or after since, with appID's
// figures.
func (s *Store) NodeReports(ctx context.Context, appID string, since time.Time) ([]store.NodeAppReport, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("node reports: %w", err)
	}
	defer s.mu.RUnlock()

	if !storable(appID) {
		appID = ""
	}
	rows, _ := s.pool.Query(ctx, `
		SELECT n.id, n.addr, n.ready, n.reason, n.at, a.figures
		FROM herald.nodes n LEFT JOIN herald.node_apps a ON a.node_id = n.id AND a.app_id = $1
		WHERE n.at >= $2 ORDER BY n.id`, appID, since)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.NodeAppReport, error) {
		var r store.NodeAppReport
		err := row.Scan(&r.NodeID, &r.Addr, &r.Ready, &r.Reason, &r.At, &r.App)
		r.At = r.At.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("node reports: %w", interpretError(err))
	}
	if out == nil {
		out = []store.NodeAppReport{}
	}
	return out, nil
}
