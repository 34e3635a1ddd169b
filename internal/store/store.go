// Package store is Herald's storage contract: apps, their keys, topics and
// message history. Implementations live in subpackages (sqlite, the embedded
// default; postgres, for clusters) and pass the conformance suite in
// storetest.
//
// Each method is one use case and one transaction. Implementations translate
// their driver's errors at the boundary: callers only ever see the sentinels
// below (wrapped with context), never sql.ErrNoRows or a driver type.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means the app, key, topic or message asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict means the write would break a uniqueness rule (an app id or a
// key id that already exists). App names need not be unique.
var ErrConflict = errors.New("conflict")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store closed")

// ErrUnavailable means the store could not do the work for a reason a
// later retry may not meet: the database is unreachable or restarting, the
// connection was lost, the database is busy. Nothing was written.
var ErrUnavailable = errors.New("store unavailable")

// ErrFull means the store's disk is full. It wraps ErrUnavailable: space
// may be freed, and the same write then succeeds.
var ErrFull = fmt.Errorf("%w: storage full", ErrUnavailable)

// ErrCommitUnknown means the connection was lost while a write committed,
// and the store could not find out in time whether the commit went
// through: the write may be stored or not. It is never reported as
// success; a retry that carries the same idempotency key is safe.
var ErrCommitUnknown = errors.New("commit outcome unknown: the connection was lost during COMMIT")

// Scope is what a key may do within its app.
type Scope string

// The scopes a key can hold.
const (
	ScopePublish   Scope = "publish"
	ScopeSubscribe Scope = "subscribe"
	ScopeManage    Scope = "manage"
)

// App is a tenant. Every topic and key belongs to exactly one app.
type App struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Key is an API key of an app. Only a hash of the key's secret is stored.
type Key struct {
	// ID is the public part of the key, unique across the install.
	ID string
	// AppID is the app the key belongs to.
	AppID string
	// SecretHash is a hash of the secret part (see package auth).
	SecretHash []byte
	// Scopes is what the key may do.
	Scopes    []Scope
	CreatedAt time.Time
	// LastUsedAt is when the key was last seen in use, to the minute at
	// best (see Keys.TouchKeys); zero when never. Only ListKeys fills it.
	LastUsedAt time.Time
}

// Topic is a named stream of messages within an app.
type Topic struct {
	AppID string
	Name  string
	// LastID is the id of the newest message ever published to the topic
	// (0 when none has been). Ids start at 1 and grow by one per message.
	LastID    uint64
	CreatedAt time.Time
}

// Message is one published message as kept in history.
type Message struct {
	AppID string
	Topic string
	// ID is strictly increasing per topic, assigned in commit order, with no
	// gaps: the message published after id n has id n+1.
	ID uint64
	// Body is the message in compact JSON.
	Body        json.RawMessage
	PublishedAt time.Time
}

// PublishRequest is one message to store.
type PublishRequest struct {
	AppID string
	Topic string
	// Body must be compact, valid JSON; the store does not check it.
	Body json.RawMessage
	// CommittedFunc, if not nil, is called with the stored message after it
	// commits and before Publish returns. Calls for one topic happen in id
	// order, never concurrently, which is how the caller hands messages to
	// the broadcaster in order although publishes race. It must not block.
	// It is not called when the publish repeats an earlier one (see
	// IdempotencyKey): that message was handed over when it committed.
	CommittedFunc func(Message)
	// IdempotencyKey, if not empty, makes a retried publish safe: within
	// an app, a key that a publish used in the last IdempotencyWindow makes
	// Publish return that publish's message (same id, topic and
	// published_at; the body as stored, or nil once history retention
	// pruned the message) and store nothing: no message, no delivery, no
	// CommittedFunc call. A key used before with another topic gives
	// ErrConflict. Publishes that race with one key (in one process or on
	// several nodes) store one message; the others return it. Deleting the
	// topic forgets its keys. Keys are compared bytewise; the store does not
	// bound their length (the caller should).
	IdempotencyKey string
}

// ItemError is the error of a PublishBatch that failed because of one of its
// requests. Nothing of the batch was stored.
type ItemError struct {
	// Index is the failing request's place in the batch, from 0.
	Index int
	// Err says why, wrapping ErrNotFound or ErrConflict where one applies.
	Err error
}

func (e *ItemError) Error() string { return fmt.Sprintf("message %d: %v", e.Index, e.Err) }

// Unwrap returns Err, so that errors.Is sees the sentinel it wraps.
func (e *ItemError) Unwrap() error { return e.Err }

// IdempotencyWindow is how long a store remembers a publish's
// IdempotencyKey. Prune forgets keys older than this.
const IdempotencyWindow = 24 * time.Hour

// Retention bounds the history of each topic: a message is pruned only when
// it is both older than MaxAge and not among the newest Keep of its topic.
type Retention struct {
	// Keep is how many of each topic's newest messages are always kept.
	Keep int
	// MaxAge is how long every message is kept regardless of Keep.
	MaxAge time.Duration
}

// Store keeps apps, keys, topics and history. Implementations are safe for
// concurrent use; after Close every method returns ErrClosed.
type Store interface {
	// CreateApp creates an app with its first keys in one transaction.
	// A key id that already exists gives ErrConflict.
	CreateApp(ctx context.Context, app App, keys []Key) error
	// ListApps returns every app, oldest first.
	ListApps(ctx context.Context) ([]App, error)
	// GetApp returns one app or ErrNotFound.
	GetApp(ctx context.Context, appID string) (App, error)
	// DeleteApp deletes an app with its keys, topics and history, or
	// returns ErrNotFound.
	DeleteApp(ctx context.Context, appID string) error

	// GetKey returns the key with this id or ErrNotFound.
	GetKey(ctx context.Context, keyID string) (Key, error)

	// CreateTopic creates a topic if it does not exist. created reports
	// whether this call created it. An unknown app gives ErrNotFound.
	CreateTopic(ctx context.Context, appID, name string) (topic Topic, created bool, err error)
	// GetTopic returns one topic or ErrNotFound.
	GetTopic(ctx context.Context, appID, name string) (Topic, error)
	// ListTopics returns the app's topics ordered by name.
	ListTopics(ctx context.Context, appID string) ([]Topic, error)
	// DeleteTopic deletes a topic and its history, or returns ErrNotFound.
	DeleteTopic(ctx context.Context, appID, name string) error

	// Publish stores messages, each in its topic's history, assigning ids.
	// When it returns, every message it returns is committed. It fails as a
	// whole: no message is stored when it returns an error. A topic that
	// does not exist gives ErrNotFound.
	Publish(ctx context.Context, req PublishRequest) (Message, error)
	// PublishBatch stores reqs in one transaction, all or nothing, and
	// returns their messages in the order of reqs. Each request is
	// handled as Publish handles it alone: within a topic, ids follow the
	// order of reqs; CommittedFunc is called in id order per topic after
	// the commit; a request whose IdempotencyKey a publish used within the
	// window (one of reqs before it included) gets that publish's message
	// and stores nothing, while the rest are stored. A request that would
	// fail alone (a topic that does not exist: ErrNotFound; a key used
	// with another topic: ErrConflict) fails the whole batch with an
	// *ItemError naming such a request (the first in reqs among those of
	// its kind), and nothing is stored.
	// An empty reqs stores nothing and returns no messages.
	PublishBatch(ctx context.Context, reqs []PublishRequest) ([]Message, error)
	// History returns up to limit messages of a topic with id > after,
	// oldest first. A topic that does not exist gives ErrNotFound.
	History(ctx context.Context, appID, topic string, after uint64, limit int) ([]Message, error)
	// Prune deletes messages outside the retention and returns how many.
	// It also forgets the idempotency keys whose window has ended at now
	// (not counted): those of messages published at now-IdempotencyWindow
	// or before, which a publish would no longer replay.
	Prune(ctx context.Context, r Retention, now time.Time) (int64, error)

	// Close releases the store. It is safe to call more than once.
	Close() error
}
