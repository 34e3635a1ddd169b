package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

var _ store.Outbox = (*Store)(nil)

// CreateTrigger stores a trigger on an existing topic. An unknown app or
// topic gives store.ErrNotFound, an id that exists store.ErrConflict. A
// zero CreatedAt is stored as the database's now.
func (s *Store) CreateTrigger(ctx context.Context, t store.Trigger) error {
	return s.CreateTriggerWithin(ctx, t, 0, 0)
}

// CreateTriggerWithin is CreateTrigger for an app allowed at most max
// triggers and a topic allowed at most perTopic (<= 0: any number); past
// the topic's cap, store.ErrTopicTriggersFull, past the app's,
// store.ErrLimitReached.
func (s *Store) CreateTriggerWithin(ctx context.Context, t store.Trigger, max, perTopic int) (err error) {
	if err := s.enter(); err != nil {
		return fmt.Errorf("create trigger: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("create trigger on topic %s: %w", t.Topic, interpretError(err))
		}
	}()
	if !storable(t.AppID) || !storable(t.Topic) {
		return store.ErrNotFound
	}
	if !storable(t.ID) || !storable(t.URL) || !storable(t.Secret) {
		return errors.New("id, URL or secret is not valid UTF-8 or holds NUL")
	}
	if max <= 0 && perTopic <= 0 {
		// The foreign key locks the topic's row FOR KEY SHARE, which a
		// publish batch's lock does not conflict with: creating a trigger
		// never waits for publishes.
		return insertTrigger(ctx, s.pool, t)
	}
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		// The app's row, not the topic's, is locked for the per-topic cap
		// too: one lock for both counts, and a publish batch (which locks
		// the topic's row) does not wait for it.
		if err := lockAppCreates(ctx, tx, t.AppID); err != nil {
			return err
		}
		count := func(query string, args ...any) (int, error) {
			var n int
			err := tx.QueryRow(ctx, query, args...).Scan(&n)
			return n, err
		}
		if err := sqlstore.CheckTriggerRoom(count, limitsSQL, t.AppID, t.Topic, max, perTopic); err != nil {
			return err
		}
		return insertTrigger(ctx, tx, t)
	})
}

// insertTrigger inserts t through q, the pool or a transaction; an unknown
// topic gives store.ErrNotFound.
func insertTrigger(ctx context.Context, q interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, t store.Trigger) error {
	tag, err := q.Exec(ctx, `
		INSERT INTO herald.triggers (id, app_id, topic_id, url, secret, disabled, created_at)
		SELECT $1, t.app_id, t.id, $2, $3, $4, coalesce($5::timestamptz, now())
		FROM herald.topics t WHERE t.app_id = $6 AND t.name = $7`,
		t.ID, t.URL, t.Secret, t.Disabled, nullTime(t.CreatedAt), t.AppID, t.Topic)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ListTriggers returns a topic's triggers with the counts of their
// deliveries, oldest first. An unknown app or topic gives
// store.ErrNotFound.
func (s *Store) ListTriggers(ctx context.Context, appID, topic string) (_ []store.TriggerStats, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("list triggers of topic %s: %w", topic, interpretError(err))
		}
	}()
	if !storable(appID) || !storable(topic) {
		return nil, store.ErrNotFound
	}

	// One statement, so one snapshot. The outer join gives a topic without
	// triggers one row of NULLs, and an unknown topic no row at all.
	rows, err := s.pool.Query(ctx, `
		SELECT tr.id, tr.url, tr.secret, tr.disabled, tr.created_at, tr.previous_secret, tr.previous_secret_until,
			(SELECT count(*) FROM herald.deliveries d WHERE d.trigger_id = tr.id AND d.state = 'pending'),
			(SELECT count(*) FROM herald.deliveries d WHERE d.trigger_id = tr.id AND d.state = 'delivered'),
			(SELECT count(*) FROM herald.deliveries d WHERE d.trigger_id = tr.id AND d.state = 'dead')
		FROM herald.topics t LEFT JOIN herald.triggers tr ON tr.topic_id = t.id
		WHERE t.app_id = $1 AND t.name = $2
		ORDER BY tr.created_at, tr.seq`, appID, topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	out := []store.TriggerStats{}
	for rows.Next() {
		found = true
		var id, url, secret, previous *string
		var disabled *bool
		var created, previousUntil *time.Time
		var ts store.TriggerStats
		if err := rows.Scan(&id, &url, &secret, &disabled, &created, &previous, &previousUntil,
			&ts.Pending, &ts.Delivered, &ts.Dead); err != nil {
			return nil, err
		}
		if id == nil {
			continue // the topic has no triggers
		}
		ts.Trigger = store.Trigger{
			ID: *id, AppID: appID, Topic: topic, URL: *url, Secret: *secret,
			Disabled: *disabled, CreatedAt: created.UTC(), PreviousSecret: *previous,
		}
		if previousUntil != nil {
			ts.PreviousSecretUntil = previousUntil.UTC()
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// DeleteTrigger deletes a trigger of a topic with its deliveries, or
// returns store.ErrNotFound. It first locks the topic's row, as a publish
// batch does: a batch that holds it has enqueued for the trigger and
// commits first, and the deletion takes those deliveries with it; a batch
// that comes after enqueues nothing for the trigger (see
// insertWithDeliveriesQuery).
func (s *Store) DeleteTrigger(ctx context.Context, appID, topic, id string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete trigger: %w", err)
	}
	defer s.mu.RUnlock()

	err := store.ErrNotFound
	if storable(appID) && storable(topic) && storable(id) {
		err = s.writeTx(ctx, func(tx pgx.Tx) error {
			var topicID int64
			if err := tx.QueryRow(ctx, `SELECT id FROM herald.topics WHERE app_id = $1 AND name = $2 FOR NO KEY UPDATE`,
				appID, topic).Scan(&topicID); err != nil {
				return err
			}
			// A statement of its own, so that it sees what the batch it
			// may have waited for committed.
			tag, err := tx.Exec(ctx, `DELETE FROM herald.triggers WHERE id = $1 AND topic_id = $2`, id, topicID)
			if err == nil && tag.RowsAffected() == 0 {
				err = store.ErrNotFound
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("delete trigger %s: %w", id, interpretError(err))
	}
	return nil
}

// deliveryColumns are the columns scanDelivery reads, of deliveries d and
// triggers tr.
const deliveryColumns = `d.id, d.trigger_id, d.app_id, d.topic, d.message_id, d.body, d.published_at,
	tr.url, d.state, d.attempts, d.next_at, d.lease_until, d.last_status, d.last_error,
	d.created_at, d.updated_at`

// scanDelivery reads a row of deliveryColumns into a delivery, preceded by
// the destinations in before and followed by those in after.
func scanDelivery(row pgx.Row, before, after []any) (store.Delivery, error) {
	var d store.Delivery
	var messageID int64
	var lease *time.Time
	var state string
	dest := append(before, &d.ID, &d.TriggerID, &d.AppID, &d.Topic, &messageID, &d.Body, &d.PublishedAt,
		&d.URL, &state, &d.Attempts, &d.NextAt, &lease, &d.LastStatus, &d.LastError,
		&d.CreatedAt, &d.UpdatedAt)
	if err := row.Scan(append(dest, after...)...); err != nil {
		return store.Delivery{}, err
	}
	d.MessageID = uint64(messageID)
	d.State = store.DeliveryState(state)
	d.PublishedAt, d.NextAt = d.PublishedAt.UTC(), d.NextAt.UTC()
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	if lease != nil {
		d.LeaseUntil = lease.UTC()
	}
	return d, nil
}

// claimQuery leases up to $3 deliveries due at $1, oldest due first, of
// enabled triggers, until $2, in one statement. FOR UPDATE SKIP LOCKED
// passes over the rows another Claim is leasing right now; a row that one
// has leased and committed since this statement began is read again as
// committed (READ COMMITTED rechecks a locked row), and no longer due. So
// two Claims, on one node or two, never lease one delivery at once. The
// MATERIALIZED CTE runs the selection once: a subquery in WHERE id IN (…)
// may be run again by the planner and lock more than $3 rows. Claim moves
// next_at to the end of the lease, so that leased deliveries leave the
// front of deliveries_due and a scan for due ones does not wade through
// those in flight; lease_until is what Settle checks.
const claimQuery = `
	WITH due AS MATERIALIZED (
		SELECT d.id, d.next_at
		FROM herald.deliveries d JOIN herald.triggers tr ON tr.id = d.trigger_id
		WHERE d.state = 'pending' AND d.next_at <= $1
		  AND (d.lease_until IS NULL OR d.lease_until <= $1)
		  AND NOT tr.disabled
		ORDER BY d.next_at, d.id
		LIMIT $3
		FOR UPDATE OF d SKIP LOCKED)
	UPDATE herald.deliveries d
	SET lease_until = $2, next_at = $2, attempts = d.attempts + 1
	FROM due, herald.triggers tr
	WHERE d.id = due.id AND tr.id = d.trigger_id
	RETURNING due.next_at, ` + deliveryColumns + `, tr.secret,
		CASE WHEN tr.previous_secret_until > $1 THEN tr.previous_secret ELSE '' END`

// Claim leases up to limit deliveries due at now, oldest due first, until
// now+lease, and counts an attempt for each (see claimQuery). A leased
// delivery is due again (NextAt) when its lease runs out.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) (_ []store.Delivery, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer s.mu.RUnlock()
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %v is not positive", lease)
	}
	if limit <= 0 {
		return []store.Delivery{}, nil
	}

	type claimed struct {
		due time.Time
		d   store.Delivery
	}
	var out []claimed
	err = s.writeTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, claimQuery, now, now.Add(lease), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c claimed
			var secret, previous string
			if c.d, err = scanDelivery(rows, []any{&c.due}, []any{&secret, &previous}); err != nil {
				return err
			}
			c.d.Secret, c.d.PreviousSecret = secret, previous
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", interpretError(err))
	}
	// RETURNING comes in no particular order.
	slices.SortFunc(out, func(a, b claimed) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.d.ID, b.d.ID))
	})
	ds := make([]store.Delivery, len(out))
	for i, c := range out {
		ds[i] = c.d
	}
	return ds, nil
}

// Settle records the outcome of an attempt, if the delivery still holds
// the lease o.LeaseUntil, and ends the lease; with o.DisableTrigger it also
// disables the delivery's trigger, in the same statement. An unknown
// delivery gives store.ErrNotFound, another lease store.ErrConflict.
func (s *Store) Settle(ctx context.Context, o store.Outcome) (err error) {
	if err := s.enter(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("settle %s: %w", o.DeliveryID, interpretError(err))
		}
	}()
	switch o.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		return fmt.Errorf("state %q is not pending, delivered or dead", o.State)
	}
	if !storable(o.DeliveryID) {
		return store.ErrNotFound
	}
	// The error text may quote what a receiver answered: it is kept as
	// text Postgres can hold rather than refused, which would leave the
	// delivery leased and attempted again.
	errText := strings.ReplaceAll(strings.ToValidUTF8(o.Error, "\uFFFD"), "\x00", "\uFFFD")
	next := o.NextAt
	if o.State != store.DeliveryPending {
		next = time.Time{}
	}

	// One statement: the outcome and the trigger's fate commit together.
	// The EXISTS reads the snapshot before the update, so it tells an
	// unknown delivery from a lease lost.
	var settled, exists bool
	err = s.pool.QueryRow(ctx, `
		WITH ended AS (SELECT coalesce($5::timestamptz, now()) AS ts),
		settled AS (
			UPDATE herald.deliveries
			SET state = $1, next_at = coalesce($2::timestamptz, (SELECT ts FROM ended)),
				last_status = $3, last_error = $4, updated_at = (SELECT ts FROM ended), lease_until = NULL
			WHERE id = $6 AND lease_until = $7
			RETURNING trigger_id),
		disabled AS (
			UPDATE herald.triggers SET disabled = true
			WHERE $8::boolean AND id = (SELECT trigger_id FROM settled)),
		logged AS (
			INSERT INTO herald.attempts (trigger_id, delivery_id, at, status, error, duration_us, next_at)
			SELECT trigger_id, $6, (SELECT ts FROM ended), $3, $4, $9, $2::timestamptz FROM settled)
		SELECT EXISTS (SELECT 1 FROM settled), EXISTS (SELECT 1 FROM herald.deliveries WHERE id = $6)`,
		string(o.State), nullTime(next), o.Status, errText, nullTime(o.At), o.DeliveryID, nullTime(o.LeaseUntil),
		o.DisableTrigger, o.Duration.Microseconds()).Scan(&settled, &exists)
	switch {
	case err != nil:
		return err
	case settled:
		return nil
	case !exists:
		return store.ErrNotFound
	}
	return fmt.Errorf("lease %v no longer held: %w", o.LeaseUntil, store.ErrConflict)
}

// DeadLetters returns up to limit of an app's dead deliveries, newest
// first, with their trigger's URL but not its secret. An unknown app gives
// store.ErrNotFound.
func (s *Store) DeadLetters(ctx context.Context, appID string, limit int) (_ []store.Delivery, err error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer s.mu.RUnlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("dead letters: %w", interpretError(err))
		}
	}()
	if !storable(appID) {
		return nil, store.ErrNotFound
	}

	out := []store.Delivery{}
	if limit > 0 {
		rows, err := s.pool.Query(ctx, `
			SELECT `+deliveryColumns+`
			FROM herald.deliveries d JOIN herald.triggers tr ON tr.id = d.trigger_id
			WHERE d.app_id = $1 AND d.state = 'dead'
			ORDER BY d.updated_at DESC, d.id DESC
			LIMIT $2`, appID, limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows, nil, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	// None: is there such an app?
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM herald.apps WHERE id = $1)`, appID).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// Redrive makes a dead delivery of the app pending again, due at now, with
// no attempts and no lease, keeping its id. A delivery that is pending or
// delivered is left as it is; an unknown one, or one of another app, gives
// store.ErrNotFound.
func (s *Store) Redrive(ctx context.Context, appID, id string, now time.Time) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("redrive: %w", err)
	}
	defer s.mu.RUnlock()

	exists, disabled, state := false, false, ""
	if storable(appID) && storable(id) {
		// target reads the snapshot before the update: the delivery is
		// there whether or not it was dead.
		err := s.pool.QueryRow(ctx, `
			WITH target AS (
				SELECT d.id, d.state, t.disabled FROM herald.deliveries d
				JOIN herald.triggers t ON t.id = d.trigger_id
				WHERE d.id = $1 AND d.app_id = $2),
			redriven AS (
				UPDATE herald.deliveries
				SET state = 'pending', next_at = coalesce($3::timestamptz, now()), attempts = 0,
					lease_until = NULL, updated_at = coalesce($3::timestamptz, now())
				WHERE id IN (SELECT id FROM target WHERE NOT disabled) AND state = 'dead'
				RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM target), coalesce((SELECT disabled FROM target), false),
				coalesce((SELECT state FROM target), '')`,
			id, appID, nullTime(now)).Scan(&exists, &disabled, &state)
		if err != nil {
			return fmt.Errorf("redrive %s: %w", id, interpretError(err))
		}
	}
	if !exists {
		return fmt.Errorf("redrive %s: %w", id, store.ErrNotFound)
	}
	if state == string(store.DeliveryDelivered) {
		return fmt.Errorf("redrive %s: %w", id, store.ErrDelivered)
	}
	if disabled {
		return fmt.Errorf("redrive %s: its trigger is disabled: %w", id, store.ErrConflict)
	}
	return nil
}

// PruneDeliveries deletes delivered deliveries settled before
// deliveredBefore and dead ones settled before deadBefore, in statements
// (and so transactions) of at most Options.PruneChunk deliveries, and
// returns how many (see sqlstore.Pruner.Deliveries). When it fails, what it
// deleted until then stays deleted.
func (s *Store) PruneDeliveries(ctx context.Context, deliveredBefore, deadBefore time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	defer s.mu.RUnlock()
	return s.pruner.Deliveries(ctx, deliveredBefore, deadBefore)
}
