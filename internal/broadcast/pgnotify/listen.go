package pgnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/broadcast"
)

// errDeaf means the listener stopped hearing this node's own pings.
var errDeaf = errors.New("listener heard no echo of its own pings")

// connect opens a listener connection and LISTENs on it.
func (b *Broadcaster) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, b.connCfg)
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
func (b *Broadcaster) awaitFirstEcho(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.StartTimeout)
	defer cancel()
	if err := b.ping(ctx); err != nil {
		return err
	}
	for !b.heard.Load() {
		n, err := conn.WaitForNotification(ctx)
		if n != nil {
			b.handle(n.Payload)
		}
		if err != nil && !b.heard.Load() {
			if ctx.Err() != nil {
				return fmt.Errorf("pgnotify: the listener heard nothing within %v of NOTIFY on this database URL; "+
					"LISTEN/NOTIFY cannot work through a transaction-pooling proxy (PgBouncer in transaction or statement mode): "+
					"point --database-url straight at Postgres, or at a proxy in session mode", b.cfg.StartTimeout)
			}
			return fmt.Errorf("pgnotify: listen: %w", err)
		}
	}
	b.metrics.listenerUp.Set(1)
	return nil
}

// run owns the listener connection: it receives until the connection fails
// or goes deaf, then reconnects with backoff, until Close.
func (b *Broadcaster) run(conn *pgx.Conn) {
	for attempt := 0; ; {
		if conn != nil {
			err := b.receive(conn)
			closeConn(conn)
			conn = nil
			b.heard.Store(false)
			b.metrics.listenerUp.Set(0)
			if b.ctx.Err() != nil {
				return
			}
			b.log.Warn("postgres listener lost; reconnecting", "err", err)
			attempt = 0
		}
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(backoff(attempt, b.cfg.MaxBackoff)):
		}
		attempt++
		c, err := b.connect(b.ctx)
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("postgres listener: reconnect failed", "attempt", attempt, "err", err)
			}
			continue
		}
		conn = c
		b.metrics.reconnects.Inc()
		b.log.Info("postgres listener reconnected", "attempt", attempt)
		// LISTEN is in place: anything committed from now on will be heard,
		// so read what each subscribed topic missed before it.
		b.catchUp()
	}
}

// backoff is the wait before reconnect attempt n: exponential from 250 ms,
// capped, with jitter so that nodes cut off together do not return in step.
// The first wait is under half a second.
func backoff(n int, limit time.Duration) time.Duration {
	d := 250 * time.Millisecond << min(n, 16)
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// receive reads notifications until the connection fails, the listener goes
// deaf, or Close. It waits at most a check interval at a time, to notice a
// missing echo.
func (b *Broadcaster) receive(conn *pgx.Conn) error {
	b.lastEcho.Store(time.Now().UnixNano())
	for {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CheckInterval)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if n != nil {
			b.handle(n.Payload)
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("pgnotify: receive: %w", err)
			}
		}
		if time.Since(time.Unix(0, b.lastEcho.Load())) > b.cfg.DeafAfter {
			return errDeaf
		}
	}
}

// handle acts on one notification. It never blocks on a subscriber: at most
// it takes a topic's lock for an in-memory hand-off or starts a history read.
func (b *Broadcaster) handle(payload string) {
	b.metrics.received.Inc()
	var env envelope
	if err := json.Unmarshal([]byte(payload), &env); err != nil {
		b.metrics.bad.Inc()
		b.log.Debug("ignoring an undecodable notification", "err", err)
		return
	}
	own := env.Node == b.NodeID()
	switch env.Kind {
	case kindPing:
		if own {
			b.lastEcho.Store(time.Now().UnixNano())
			if !b.heard.Swap(true) {
				b.metrics.listenerUp.Set(1)
			}
		}
	case kindDrop:
		if !own {
			b.remoteDrop(env.App, env.Topic)
		}
	case kindMessages:
		// Own messages too: Publish delivered them when they committed, and
		// the sequencer drops them here as duplicates, unless the commit's
		// outcome was unknown to this node and Publish was never called.
		ts := b.lookup(env.App, env.Topic)
		if ts == nil {
			return
		}
		if len(env.Msgs) == 0 {
			b.want(ts, env.Last)
			return
		}
		var msgs []inlineMsg
		if err := json.Unmarshal(env.Msgs, &msgs); err != nil {
			b.metrics.bad.Inc()
			b.want(ts, env.Last) // the range still exists in history
			return
		}
		for _, m := range msgs {
			b.offer(ts, &broadcast.Event{
				App: env.App, Topic: env.Topic, ID: m.ID, Message: m.Body,
				PublishedAt: time.UnixMicro(m.At).UTC(),
			})
		}
	default:
		b.metrics.bad.Inc()
	}
}

// pingLoop notifies this node every check interval, which the listener must
// hear back, and samples the notification queue's usage while at it.
func (b *Broadcaster) pingLoop() {
	t := time.NewTicker(b.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CheckInterval)
		if err := b.ping(ctx); err != nil && b.ctx.Err() == nil {
			b.log.Warn("postgres listener: ping", "err", err)
		}
		cancel()
	}
}

// ping sends one liveness notification and records the queue's usage.
func (b *Broadcaster) ping(ctx context.Context) error {
	p, err := b.cfg.Notifier.payload(envelope{Kind: kindPing, Seq: b.pingSeq.Add(1)})
	if err != nil {
		return err
	}
	var usage float64
	if err := b.cfg.Pool.QueryRow(ctx, "SELECT pg_notify($1, $2), pg_notification_queue_usage()", Channel, p).Scan(nil, &usage); err != nil {
		return fmt.Errorf("pgnotify: ping: %w", err)
	}
	b.metrics.queueUsage.Set(usage)
	return nil
}
