package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlstore"
)

var _ store.Outbox = (*Store)(nil)

// insertDeliveryQuery enqueues one delivery, pending and due at its
// message's stamp: args ?1 id, ?2 trigger id, ?3 app id, ?4 topic name,
// ?5 message id, ?6 body, ?7 published_at.
const insertDeliveryQuery = `
	INSERT INTO deliveries (id, trigger_id, app_id, topic, message_id, body, published_at,
		state, attempts, next_at, created_at, updated_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?7, ?7, ?7)`

// getIdempotencyKeyQuery reads the publish that used key ?2 in app ?1
// after the cutoff ?3. The body is NULL once Prune deleted the message.
const getIdempotencyKeyQuery = `
	SELECT t.name, i.message_id, i.published_at, m.body
	FROM idempotency i
	JOIN topics t ON t.id = i.topic_id
	LEFT JOIN messages m ON m.topic_id = i.topic_id AND m.id = i.message_id
	WHERE i.app_id = ?1 AND i.key = ?2 AND i.created_at > ?3`

// putIdempotencyKeyQuery records that message ?4 of topic row id ?3 used
// key ?2 in app ?1, at stamp ?5. A row for the key can only be an expired
// one (the writer looked the key up first, in the same transaction), so it
// is replaced.
const putIdempotencyKeyQuery = `
	INSERT INTO idempotency (app_id, key, topic_id, message_id, published_at, created_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?5)
	ON CONFLICT (app_id, key) DO UPDATE SET
		topic_id = excluded.topic_id, message_id = excluded.message_id,
		published_at = excluded.published_at, created_at = excluded.created_at`

// CreateTrigger stores a trigger on an existing topic. An unknown app or
// topic gives store.ErrNotFound, an id that exists store.ErrConflict. A
// zero CreatedAt is stored as now.
func (s *Store) CreateTrigger(ctx context.Context, t store.Trigger) error {
	return s.CreateTriggerWithin(ctx, t, 0, 0)
}

// CreateTriggerWithin is CreateTrigger for an app allowed at most max
// triggers and a topic allowed at most perTopic (<= 0: any number); past
// the topic's cap, store.ErrTopicTriggersFull, past the app's,
// store.ErrLimitReached. The counts and the insert are one write
// transaction, and SQLite runs one at a time.
func (s *Store) CreateTriggerWithin(ctx context.Context, t store.Trigger, max, perTopic int) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("create trigger: %w", err)
	}
	defer s.mu.RUnlock()

	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		count := func(query string, args ...any) (int, error) {
			var n int
			err := tx.QueryRowContext(ctx, query, args...).Scan(&n)
			return n, err
		}
		if err := sqlstore.CheckTriggerRoom(count, limitsSQL, t.AppID, t.Topic, max, perTopic); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO triggers (id, app_id, topic_id, url, secret, disabled, created_at)
			SELECT ?1, t.app_id, t.id, ?2, ?3, ?4, ?5 FROM topics t WHERE t.app_id = ?6 AND t.name = ?7`,
			t.ID, t.URL, t.Secret, t.Disabled, unixNano(t.CreatedAt), t.AppID, t.Topic)
		if err != nil {
			return err
		}
		return requireOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("create trigger on topic %s: %w", t.Topic, interpretError(err))
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

	// One statement, so one snapshot. The outer join gives a topic without
	// triggers one row of NULLs, and an unknown topic no row at all.
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT tr.id, tr.url, tr.secret, tr.disabled, tr.created_at, tr.previous_secret, tr.previous_secret_until,
			(SELECT count(*) FROM deliveries d WHERE d.trigger_id = tr.id AND d.state = 'pending'),
			(SELECT count(*) FROM deliveries d WHERE d.trigger_id = tr.id AND d.state = 'delivered'),
			(SELECT count(*) FROM deliveries d WHERE d.trigger_id = tr.id AND d.state = 'dead')
		FROM topics t LEFT JOIN triggers tr ON tr.topic_id = t.id
		WHERE t.app_id = ?1 AND t.name = ?2
		ORDER BY tr.created_at, tr.rowid`, appID, topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	out := []store.TriggerStats{}
	for rows.Next() {
		found = true
		var id, url, secret, previous sql.NullString
		var disabled sql.NullBool
		var created, previousUntil sql.NullInt64
		var ts store.TriggerStats
		if err := rows.Scan(&id, &url, &secret, &disabled, &created, &previous, &previousUntil,
			&ts.Pending, &ts.Delivered, &ts.Dead); err != nil {
			return nil, err
		}
		if !id.Valid {
			continue // the topic has no triggers
		}
		ts.Trigger = store.Trigger{
			ID: id.String, AppID: appID, Topic: topic, URL: url.String, Secret: secret.String,
			Disabled: disabled.Bool, CreatedAt: fromUnixNano(created.Int64), PreviousSecret: previous.String,
		}
		if previousUntil.Int64 != 0 {
			ts.PreviousSecretUntil = fromUnixNano(previousUntil.Int64)
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, sql.ErrNoRows
	}
	return out, nil
}

// DeleteTrigger deletes a trigger of a topic with its deliveries, or
// returns store.ErrNotFound.
func (s *Store) DeleteTrigger(ctx context.Context, appID, topic, id string) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("delete trigger: %w", err)
	}
	defer s.mu.RUnlock()

	res, err := s.wdb.ExecContext(ctx, `
		DELETE FROM triggers
		WHERE id = ?1 AND topic_id = (SELECT id FROM topics WHERE app_id = ?2 AND name = ?3)`, id, appID, topic)
	if err == nil {
		err = requireOneRow(res)
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

// scanDelivery reads a row of deliveryColumns, followed by the trigger's
// secret when withSecret is set.
func scanDelivery(rows *sql.Rows, withSecret bool) (store.Delivery, error) {
	var d store.Delivery
	var messageID, published, next, created, updated int64
	var lease sql.NullInt64
	var state string
	dest := []any{&d.ID, &d.TriggerID, &d.AppID, &d.Topic, &messageID, &d.Body, &published,
		&d.URL, &state, &d.Attempts, &next, &lease, &d.LastStatus, &d.LastError,
		&created, &updated}
	if withSecret {
		dest = append(dest, &d.Secret, &d.PreviousSecret)
	}
	if err := rows.Scan(dest...); err != nil {
		return store.Delivery{}, err
	}
	d.MessageID = uint64(messageID)
	d.PublishedAt = fromUnixNano(published)
	d.State = store.DeliveryState(state)
	d.NextAt = fromUnixNano(next)
	if lease.Valid {
		d.LeaseUntil = fromUnixNano(lease.Int64)
	}
	d.CreatedAt = fromUnixNano(created)
	d.UpdatedAt = fromUnixNano(updated)
	return d, nil
}

// dueFrom is the deliveries due at ?1, of enabled triggers tr. Claim
// moves next_at to the end of the lease, so that leased deliveries leave
// the front of deliveries_due and a scan for due ones does not wade
// through those in flight; lease_until is what Settle checks.
const dueFrom = `
	FROM deliveries d JOIN triggers tr ON tr.id = d.trigger_id
	WHERE d.state = 'pending' AND d.next_at <= ?1
	  AND (d.lease_until IS NULL OR d.lease_until <= ?1)
	  AND tr.disabled = 0`

// claimQuery selects up to ?2 deliveries due at ?1, oldest due first.
const claimQuery = `
	SELECT ` + deliveryColumns + `, tr.secret,
		CASE WHEN tr.previous_secret_until > ?1 THEN tr.previous_secret ELSE '' END
	` + dueFrom + `
	ORDER BY d.next_at, d.rowid
	LIMIT ?2`

// anyDueQuery tells whether a delivery is due at ?1: one row if so.
const anyDueQuery = `SELECT 1 ` + dueFrom + ` LIMIT 1`

// Claim leases up to limit deliveries due at now, oldest due first, until
// now+lease, and counts an attempt for each. It is one write transaction,
// so Claims take turns with each other and with publish batches: no two
// lease one delivery at once. A leased delivery is due again (NextAt) when
// its lease runs out.
//
// When no delivery is due, which a read on the read pool tells, Claim
// writes nothing: the dispatcher claims after every publish, triggers or
// not, and a write transaction each time was a cost to every publish
// (another turn on the write connection, and a new data version, which
// empties the writer's cache of topic heads). A delivery committed after
// that read is seen by the next Claim, which the publish that enqueued it
// asks for.
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

	at := now.UnixNano()
	var one int
	switch err := s.stmts.anyDue.QueryRowContext(ctx, at).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("claim: %w", interpretError(err))
	}
	until := now.Add(lease).UnixNano()
	var out []store.Delivery
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, claimQuery, at, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows, true)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if len(out) == 0 {
			return nil
		}
		ids := make([]string, len(out))
		for i, d := range out {
			ids[i] = d.ID
		}
		list, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE deliveries SET lease_until = ?1, next_at = ?1, attempts = attempts + 1
			WHERE id IN (SELECT value FROM json_each(?2))`, until, string(list)); err != nil {
			return err
		}
		for i := range out {
			out[i].Attempts++
			out[i].LeaseUntil = fromUnixNano(until)
			out[i].NextAt = out[i].LeaseUntil
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", interpretError(err))
	}
	return out, nil
}

// Settle records the outcome of an attempt, if the delivery still holds
// the lease o.LeaseUntil, and ends the lease; with o.DisableTrigger it also
// disables the delivery's trigger, in the same transaction. An unknown
// delivery gives store.ErrNotFound, another lease store.ErrConflict.
func (s *Store) Settle(ctx context.Context, o store.Outcome) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	defer s.mu.RUnlock()

	next, at, err := settleTimes(o)
	if err != nil {
		return fmt.Errorf("settle %s: %w", o.DeliveryID, err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		var trigger string
		err := tx.QueryRowContext(ctx, `
			UPDATE deliveries
			SET state = ?1, next_at = ?2, last_status = ?3, last_error = ?4, updated_at = ?5, lease_until = NULL
			WHERE id = ?6 AND lease_until = ?7
			RETURNING trigger_id`,
			string(o.State), next.UnixNano(), o.Status, o.Error, at.UnixNano(), o.DeliveryID, o.LeaseUntil.UnixNano()).Scan(&trigger)
		if errors.Is(err, sql.ErrNoRows) {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = ?1)`, o.DeliveryID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return store.ErrNotFound
			}
			return fmt.Errorf("lease %v no longer held: %w", o.LeaseUntil, store.ErrConflict)
		}
		if err != nil {
			return err
		}
		var retryAt sql.NullInt64
		if o.State == store.DeliveryPending {
			retryAt = sql.NullInt64{Int64: next.UnixNano(), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, insertAttemptQuery,
			trigger, o.DeliveryID, at.UnixNano(), o.Status, o.Error, int64(o.Duration), retryAt, false); err != nil {
			return err
		}
		if o.DisableTrigger {
			_, err = tx.ExecContext(ctx, `UPDATE triggers SET disabled = 1 WHERE id = ?1`, trigger)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("settle %s: %w", o.DeliveryID, interpretError(err))
	}
	return nil
}

// settleTimes checks o's state and returns the delivery's next_at and
// updated_at: o.At, or now when zero, and o.NextAt, or o.At when zero.
func settleTimes(o store.Outcome) (next, at time.Time, err error) {
	switch o.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		return next, at, fmt.Errorf("state %q is not pending, delivered or dead", o.State)
	}
	at = o.At
	if at.IsZero() {
		at = time.Now()
	}
	next = o.NextAt
	if next.IsZero() || o.State != store.DeliveryPending {
		next = at
	}
	return next, at, nil
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

	// One read transaction, so one snapshot for both statements.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM apps WHERE id = ?1)`, appID).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, sql.ErrNoRows
	}
	out := []store.Delivery{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT `+deliveryColumns+`
		FROM deliveries d JOIN triggers tr ON tr.id = d.trigger_id
		WHERE d.app_id = ?1 AND d.state = 'dead'
		ORDER BY d.updated_at DESC, d.id DESC
		LIMIT ?2`, appID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDelivery(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
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

	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var (
			disabled bool
			state    string
		)
		err := tx.QueryRowContext(ctx, `
			SELECT t.disabled, d.state FROM deliveries d JOIN triggers t ON t.id = d.trigger_id
			WHERE d.id = ?1 AND d.app_id = ?2`, id, appID).Scan(&disabled, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if state == string(store.DeliveryDelivered) {
			return store.ErrDelivered
		}
		if disabled {
			return fmt.Errorf("its trigger is disabled: %w", store.ErrConflict)
		}
		at := unixNano(now)
		_, err = tx.ExecContext(ctx, `
			UPDATE deliveries
			SET state = 'pending', next_at = ?1, attempts = 0, lease_until = NULL, updated_at = ?1
			WHERE id = ?2 AND state = 'dead'`, at, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("redrive %s: %w", id, interpretError(err))
	}
	return nil
}

// PruneDeliveries deletes delivered deliveries settled before
// deliveredBefore and dead ones settled before deadBefore, in transactions
// of at most Options.PruneChunk deliveries, and returns how many (see
// sqlstore.Pruner.Deliveries). When it fails, what it deleted until then
// stays deleted.
func (s *Store) PruneDeliveries(ctx context.Context, deliveredBefore, deadBefore time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	defer s.mu.RUnlock()
	return s.pruner.Deliveries(ctx, deliveredBefore, deadBefore)
}
