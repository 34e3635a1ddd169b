package postgres

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// TopicHeads returns, in one read, the topics among (appIDs[i], names[i])
// that exist, in no particular order, with their last ids and creation
// times: the cluster broadcaster's periodic check of every topic a node
// has subscribers for, which would otherwise be a read per topic. A pair
// that does not exist is left out.
func (s *Store) TopicHeads(ctx context.Context, appIDs, names []string) (_ []store.Topic, err error) {
	if len(appIDs) != len(names) {
		return nil, fmt.Errorf("topic heads: %d app ids for %d names", len(appIDs), len(names))
	}
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("topic heads: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("topic heads: %w", interpretError(err))
		}
	}()
	apps, tops := make([]string, 0, len(appIDs)), make([]string, 0, len(names))
	for i := range appIDs {
		if storable(appIDs[i]) && storable(names[i]) {
			apps, tops = append(apps, appIDs[i]), append(tops, names[i])
		}
	}
	if len(apps) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT t.app_id, t.name, t.last_id, t.created_at
		FROM unnest($1::text[], $2::text[]) AS k(app_id, name)
		JOIN herald.topics t ON t.app_id = k.app_id AND t.name = k.name`, apps, tops)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Topic
	for rows.Next() {
		var tp store.Topic
		var lastID int64
		if err := rows.Scan(&tp.AppID, &tp.Name, &lastID, &tp.CreatedAt); err != nil {
			return nil, err
		}
		tp.LastID = uint64(lastID)
		tp.CreatedAt = tp.CreatedAt.UTC()
		out = append(out, tp)
	}
	return out, rows.Err()
}
