package pgnotify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/store"
)

// Channel is the one LISTEN/NOTIFY channel of a Herald install. Per-topic
// channels would not do: a channel name is at most 63 bytes.
const Channel = "herald"

// DefaultInlineLimit is the largest notification, in bytes, that carries its
// messages inline when NewNotifier is given 0. Postgres refuses payloads of
// 8000 bytes or more; the margin keeps any envelope well inside.
const DefaultInlineLimit = 6000

// maxPayload is Postgres's own limit: a payload must be shorter than this.
const maxPayload = 8000

// Notification kinds.
const (
	kindMessages = "m" // messages committed: inline, or a pointer to read
	kindDrop     = "d" // a topic was deleted
	kindPing     = "p" // a node's liveness probe, heard back by that node
)

// envelope is a notification's payload, JSON with short keys to leave room
// for inline messages.
type envelope struct {
	Kind string `json:"k"`
	// Node is the sender: a node hears its own pings, and its own messages
	// are duplicates of what it delivered when they committed.
	Node  string `json:"n"`
	App   string `json:"a,omitempty"`
	Topic string `json:"t,omitempty"`
	// First and Last are the id range of a messages notification.
	First uint64 `json:"f,omitempty"`
	Last  uint64 `json:"l,omitempty"`
	// Msgs holds every message of the range, or is absent when they did not
	// fit: receivers then read the range from history. Decoding is deferred
	// until a node knows it has subscribers for the topic.
	Msgs json.RawMessage `json:"m,omitempty"`
	// Seq numbers a node's pings.
	Seq uint64 `json:"s,omitempty"`
}

// Notifier writes the notifications of one node. It is safe for concurrent
// use.
type Notifier struct {
	node        string
	inlineLimit int
}

// NewNotifier returns the notifier of a node. An empty nodeID means a random
// one; inlineLimit 0 means DefaultInlineLimit, and it must stay under 8000.
func NewNotifier(nodeID string, inlineLimit int) (*Notifier, error) {
	if inlineLimit == 0 {
		inlineLimit = DefaultInlineLimit
	}
	if inlineLimit < 0 || inlineLimit >= maxPayload {
		return nil, fmt.Errorf("pgnotify: inline limit %d: must be between 1 and %d bytes", inlineLimit, maxPayload-1)
	}
	if nodeID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		nodeID = hex.EncodeToString(b[:])
	}
	return &Notifier{node: nodeID, inlineLimit: inlineLimit}, nil
}

// NodeID is the node's name in its notifications.
func (n *Notifier) NodeID() string { return n.node }

// NotifyTx sends, inside tx, one notification per topic for msgs, which
// must be ordered by (app, topic, id) as the Postgres store passes them to
// its BeforeCommit hook. Postgres sends them when tx commits and drops them
// if it rolls back. QueueNotify does the same without a round trip of its
// own.
func (n *Notifier) NotifyTx(ctx context.Context, tx pgx.Tx, msgs []store.Message) error {
	var b pgx.Batch
	if err := n.QueueNotify(&b, msgs); err != nil || b.Len() == 0 {
		return err
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("pgnotify: notify: %w", err)
	}
	return nil
}

// QueueNotify queues on b the statement that sends one notification per
// topic for msgs, which must be ordered by (app, topic, id): the Postgres
// store's QueueBeforeCommitFunc hook, which sends it in the round trip that
// inserts the messages. Postgres sends the notifications when the
// transaction commits and drops them if it rolls back.
func (n *Notifier) QueueNotify(b *pgx.Batch, msgs []store.Message) error {
	payloads := make([]string, 0, 1)
	for start := 0; start < len(msgs); {
		end := start + 1
		for end < len(msgs) && msgs[end].AppID == msgs[start].AppID && msgs[end].Topic == msgs[start].Topic {
			end++
		}
		p, err := n.messagesPayload(msgs[start:end])
		if err != nil {
			return err
		}
		payloads = append(payloads, p)
		start = end
	}
	if len(payloads) == 0 {
		return nil
	}
	// One statement for every topic of the transaction.
	b.Queue("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", Channel, payloads)
	return nil
}

// messagesPayload encodes the messages of one topic: inline when the whole
// payload fits the inline limit, else as a pointer to their id range.
func (n *Notifier) messagesPayload(group []store.Message) (string, error) {
	env := envelope{
		Kind: kindMessages, Node: n.node,
		App: group[0].AppID, Topic: group[0].Topic,
		First: group[0].ID, Last: group[len(group)-1].ID,
	}
	// Only try inline when the bodies alone leave room for the envelope.
	size := 0
	for _, m := range group {
		size += len(m.Body) + 40
	}
	if size < n.inlineLimit {
		inline := make([]cluster.WireEvent, len(group))
		for i, m := range group {
			inline[i] = cluster.WireEventOf(m.ID, m.PublishedAt, m.Body)
		}
		raw, err := cluster.MarshalJSON(inline)
		if err != nil {
			return "", fmt.Errorf("pgnotify: encode messages of %s/%s: %w", env.App, env.Topic, err)
		}
		env.Msgs = raw
		b, err := cluster.MarshalJSON(env)
		if err != nil {
			return "", fmt.Errorf("pgnotify: encode notification: %w", err)
		}
		if len(b) <= n.inlineLimit {
			return string(b), nil
		}
		env.Msgs = nil
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("pgnotify: encode notification: %w", err)
	}
	if len(b) >= maxPayload {
		// Only names long beyond any Herald allows could get here.
		return "", fmt.Errorf("pgnotify: notification for %s/%s is %d bytes, over Postgres's limit", env.App, env.Topic, len(b))
	}
	return string(b), nil
}

// payload encodes a control notification (drop or ping).
func (n *Notifier) payload(env envelope) (string, error) {
	env.Node = n.node
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("pgnotify: encode notification: %w", err)
	}
	return string(b), nil
}
