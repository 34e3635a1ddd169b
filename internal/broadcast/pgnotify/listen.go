package pgnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/broadcast/cluster"
)

// errDeaf means the listener stopped hearing this node's own pings.
var errDeaf = errors.New("listener heard no echo of its own pings")

// connect opens a listener connection and LISTENs on it.
func (t *Transport) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, t.connCfg)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: connect listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("pgnotify: LISTEN: %w", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// awaitFirstEcho pings and waits until conn hears it. Through a
// transaction-pooling proxy the LISTEN ran on a server connection the proxy
// has since handed to someone else, so the echo never comes: say so.
func (t *Transport) awaitFirstEcho(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.StartTimeout)
	defer cancel()
	if err := t.ping(ctx); err != nil {
		return err
	}
	for !t.heard.Load() {
		n, err := conn.WaitForNotification(ctx)
		if n != nil {
			t.handle(n.Payload)
		}
		if err != nil && !t.heard.Load() {
			if ctx.Err() != nil {
				return fmt.Errorf("pgnotify: the listener heard nothing within %v of NOTIFY on this database URL; "+
					"LISTEN/NOTIFY cannot work through a transaction-pooling proxy (PgBouncer in transaction or statement mode): "+
					"point --database-url straight at Postgres, or at a proxy in session mode", t.cfg.StartTimeout)
			}
			return fmt.Errorf("pgnotify: listen: %w", err)
		}
	}
	t.metrics.listenerUp.Set(1)
	return nil
}

// run owns the listener connection: it receives until the connection fails
// or goes deaf, then reconnects with backoff, until Close.
func (t *Transport) run(conn *pgx.Conn) {
	for attempt := 0; ; {
		if conn != nil {
			err := t.receive(conn)
			closeConn(conn)
			conn = nil
			t.heard.Store(false)
			t.metrics.listenerUp.Set(0)
			if t.ctx.Err() != nil {
				return
			}
			t.log.Warn("postgres listener lost; reconnecting", "err", err)
			attempt = 0
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(cluster.Backoff(attempt, t.cfg.MaxBackoff)):
		}
		attempt++
		c, err := t.connect(t.ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Warn("postgres listener: reconnect failed", "attempt", attempt, "err", err)
			}
			continue
		}
		conn = c
		t.metrics.reconnects.Inc()
		t.log.Info("postgres listener reconnected", "attempt", attempt)
		// LISTEN is in place: anything committed from now on will be heard,
		// so read what each subscribed topic missed before it.
		t.recv.Resync()
	}
}

// receive reads notifications until the connection fails, the listener goes
// deaf, or Close. It waits at most a check interval at a time, to notice a
// missing echo.
func (t *Transport) receive(conn *pgx.Conn) error {
	t.lastEcho.Store(time.Now().UnixNano())
	for {
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.CheckInterval)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if n != nil {
			t.handle(n.Payload)
		}
		if err != nil {
			if t.ctx.Err() != nil {
				return t.ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("pgnotify: receive: %w", err)
			}
		}
		if time.Since(time.Unix(0, t.lastEcho.Load())) > t.cfg.DeafAfter {
			return errDeaf
		}
	}
}

// handle acts on one notification. It never blocks on a subscriber: at most
// it takes a topic's lock for an in-memory hand-off or starts a history read.
func (t *Transport) handle(payload string) {
	t.metrics.received.Inc()
	var env envelope
	if err := json.Unmarshal([]byte(payload), &env); err != nil {
		t.metrics.bad.Inc()
		t.log.Debug("ignoring an undecodable notification", "err", err)
		return
	}
	own := env.Node == t.NodeID()
	switch env.Kind {
	case kindPing:
		if own {
			t.lastEcho.Store(time.Now().UnixNano())
			if !t.heard.Swap(true) {
				t.metrics.listenerUp.Set(1)
			}
		}
	case kindDrop:
		if !own {
			t.recv.Dropped(env.App, env.Topic)
		}
	case kindMessages:
		// Own messages too: Publish delivered them when they committed, and
		// the sequencer drops them as duplicates, unless the commit's
		// outcome was unknown to this node and Publish was never called.
		// Decoding waits until the node is known to have subscribers.
		if !t.recv.Watching(env.App, env.Topic) {
			return
		}
		if err := cluster.HandOver(t.recv, env.App, env.Topic, env.Last, env.Msgs); err != nil {
			t.metrics.bad.Inc()
		}
	default:
		t.metrics.bad.Inc()
	}
}

// pingLoop notifies this node every check interval, which the listener must
// hear back, and samples the notification queue's usage while at it.
func (t *Transport) pingLoop() {
	tick := time.NewTicker(t.cfg.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.CheckInterval)
		if err := t.ping(ctx); err != nil && t.ctx.Err() == nil {
			t.log.Warn("postgres listener: ping", "err", err)
		}
		cancel()
	}
}

// ping sends one liveness notification and records the queue's usage.
func (t *Transport) ping(ctx context.Context) error {
	p, err := t.cfg.Notifier.payload(envelope{Kind: kindPing, Seq: t.pingSeq.Add(1)})
	if err != nil {
		return err
	}
	var usage float64
	if err := t.cfg.Pool.QueryRow(ctx, "SELECT pg_notify($1, $2), pg_notification_queue_usage()", Channel, p).Scan(nil, &usage); err != nil {
		return fmt.Errorf("pgnotify: ping: %w", err)
	}
	t.metrics.queueUsage.Set(usage)
	return nil
}
