package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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

	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?1 OR at < ?2`, r.NodeID, staleBefore.UnixNano()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, addr, ready, reason, at) VALUES (?, ?, ?, ?, ?)`,
			r.NodeID, r.Addr, r.Ready, r.Reason, unixNano(r.At)); err != nil {
			return err
		}
		for app, figures := range r.Apps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO node_apps (node_id, app_id, figures) VALUES (?, ?, ?)`,
				r.NodeID, app, figures); err != nil {
				return err
			}
		}
		return nil
	})
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

	rows, err := s.rdb.QueryContext(ctx, `
		SELECT n.id, n.addr, n.ready, n.reason, n.at, a.figures
		FROM nodes n LEFT JOIN node_apps a ON a.node_id = n.id AND a.app_id = ?1
		WHERE n.at >= ?2 ORDER BY n.id`, appID, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("node reports: %w", interpretError(err))
	}
	defer rows.Close()
	out := []store.NodeAppReport{}
	for rows.Next() {
		var r store.NodeAppReport
		var at int64
		if err := rows.Scan(&r.NodeID, &r.Addr, &r.Ready, &r.Reason, &at, &r.App); err != nil {
			return nil, fmt.Errorf("node reports: %w", interpretError(err))
		}
		r.At = fromUnixNano(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node reports: %w", interpretError(err))
	}
	return out, nil
}
