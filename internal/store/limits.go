package store

import (
	"context"
	"errors"
)

// ErrLimitReached is a create refused because the app already holds as
// many topics or triggers as its limit allows.
var ErrLimitReached = errors.New("limit reached")

// ErrTopicTriggersFull is a trigger create refused because its topic
// already holds as many triggers as a topic may. It is not ErrLimitReached:
// the cap is the server's, not the app's, and no override raises it.
var ErrTopicTriggersFull = errors.New("topic trigger cap reached")

// AppLimits are an app's own limits, which override the server's defaults
// for that app. For each field, 0 means the server's default, a negative
// value means unlimited, and a positive one is the limit.
type AppLimits struct {
	// Streams caps the app's open event streams (per node).
	Streams int `json:"streams,omitempty"`
	// PublishRate caps the app's publishes per second (per node), refilled
	// continuously; PublishBurst is how many may come at once.
	PublishRate  float64 `json:"publish_rate,omitempty"`
	PublishBurst int     `json:"publish_burst,omitempty"`
	// Topics caps the app's topics.
	Topics int `json:"topics,omitempty"`
	// Triggers caps the app's webhook triggers, over all its topics.
	Triggers int `json:"triggers,omitempty"`
}

// LimitStore keeps each app's limits. Both stores implement it, beside
// Store. It is safe for concurrent use.
type LimitStore interface {
	// AppLimits returns an app's limits: all zero (the defaults) for an
	// app that never had its own, ErrNotFound for no such app.
	AppLimits(ctx context.Context, appID string) (AppLimits, error)
	// SetAppLimits replaces an app's limits, or returns ErrNotFound.
	// Deleting the app deletes them.
	SetAppLimits(ctx context.Context, appID string, l AppLimits) error
	// CountTriggers returns how many webhook triggers an app has, over
	// all its topics (0 for no such app).
	CountTriggers(ctx context.Context, appID string) (int, error)
	// CreateTopicWithin is CreateTopic for an app allowed at most max
	// topics (max <= 0: any number). Counting and creating are one step:
	// of concurrent creates (on any node) past the limit, exactly those
	// that fit succeed; the others get ErrLimitReached. A topic that
	// exists is returned, never refused.
	CreateTopicWithin(ctx context.Context, appID, name string, max int) (topic Topic, created bool, err error)
	// CreateTriggerWithin is Outbox.CreateTrigger for an app allowed at
	// most max triggers over all its topics and a topic allowed at most
	// perTopic (<= 0: any number), with the same guarantee for both: past
	// the topic's cap, ErrTopicTriggersFull (checked first); past the
	// app's limit, ErrLimitReached.
	CreateTriggerWithin(ctx context.Context, t Trigger, max, perTopic int) error
}
