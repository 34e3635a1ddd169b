// Package storetest is the conformance suite for store.Store and
// store.Outbox, which every store implements. Every implementation (sqlite,
// postgres) runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		storetest.Run(t, func(t *testing.T) store.Store { … })
//	}
//
// The suite tests the contract written in package store and nothing a
// particular backend does beyond it.
//
// # Portability
//
// Times the suite hands to a store are UTC and truncated to the microsecond,
// so a backend that keeps microseconds (Postgres timestamptz) passes. Times a
// store returns must be UTC, and a value it returns (say from Publish) must
// equal the same value read back later (from History). Topic names used in
// ordering checks are lowercase ASCII letters, whose order is the same under
// every collation.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

// Run runs the suite. newStore must return a new, empty store each call
// and arrange (with t.Cleanup) for it to be closed when t ends; the suite
// closes some stores itself, so Close must be safe to call twice, as the
// contract says. Every test is parallel, so newStore must be safe to call
// from parallel tests.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		st := newStore(t)
		require.NotNil(t, st)
		return &testBundle{st: st, ctx: t.Context()}
	}

	t.Run("Apps", func(t *testing.T) { t.Parallel(); testApps(t, setup) })
	t.Run("Keys", func(t *testing.T) { t.Parallel(); testKeys(t, setup) })
	t.Run("KeyLifecycle", func(t *testing.T) { t.Parallel(); testKeyLifecycle(t, setup) })
	t.Run("Topics", func(t *testing.T) { t.Parallel(); testTopics(t, setup) })
	t.Run("Publish", func(t *testing.T) { t.Parallel(); testPublish(t, setup) })
	t.Run("PublishBatch", func(t *testing.T) { t.Parallel(); testPublishBatch(t, setup) })
	t.Run("PublishAfterChange", func(t *testing.T) { t.Parallel(); testPublishAfterChange(t, setup) })
	t.Run("History", func(t *testing.T) { t.Parallel(); testHistory(t, setup) })
	t.Run("Prune", func(t *testing.T) { t.Parallel(); testPrune(t, setup) })
	t.Run("Concurrency", func(t *testing.T) { t.Parallel(); testConcurrency(t, setup) })
	t.Run("Close", func(t *testing.T) { t.Parallel(); testClose(t, setup) })
	t.Run("Outbox", func(t *testing.T) { t.Parallel(); testOutbox(t, setup) })
	t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, setup) })
	t.Run("TriggerAdmin", func(t *testing.T) { t.Parallel(); testTriggerAdmin(t, setup) })
	t.Run("Nodes", func(t *testing.T) { t.Parallel(); testNodes(t, setup) })
}

// testBundle is what one test case works with: a fresh store of its own.
type testBundle struct {
	st  store.Store
	ctx context.Context
}

// setupFunc makes the bundle of one test case.
type setupFunc func(t *testing.T) *testBundle

// newID returns a random id, unique enough to never collide in a test.
func newID() string {
	return rand.Text()
}

// now is the current time as the suite hands times to a store: UTC, in
// whole microseconds.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}

// createApp creates an app with no keys and returns it.
func createApp(t *testing.T, b *testBundle) store.App {
	t.Helper()
	app := store.App{ID: newID(), Name: "app " + newID(), CreatedAt: now()}
	require.NoError(t, b.st.CreateApp(b.ctx, app, nil))
	return app
}

// createTopic creates a topic that must not exist yet.
func createTopic(t *testing.T, b *testBundle, appID, name string) store.Topic {
	t.Helper()
	topic, created, err := b.st.CreateTopic(b.ctx, appID, name)
	require.NoError(t, err)
	require.True(t, created, "topic %q existed already", name)
	return topic
}

// publish publishes body to a topic that must exist and checks the message
// Publish returns.
func publish(t *testing.T, b *testBundle, appID, topic, body string) store.Message {
	t.Helper()
	msg, err := b.st.Publish(b.ctx, store.PublishRequest{AppID: appID, Topic: topic, Body: []byte(body)})
	require.NoError(t, err)
	require.Equal(t, appID, msg.AppID)
	require.Equal(t, topic, msg.Topic)
	require.Equal(t, body, string(msg.Body))
	requireUTC(t, msg.PublishedAt)
	return msg
}

// history returns the whole history of a topic that must exist.
func history(t *testing.T, b *testBundle, appID, topic string) []store.Message {
	t.Helper()
	msgs, err := b.st.History(b.ctx, appID, topic, 0, 1_000_000)
	require.NoError(t, err)
	return msgs
}

// IDs returns the ids of msgs in order.
func IDs(msgs []store.Message) []uint64 {
	out := make([]uint64, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// Seq returns the ids from..to inclusive: what a gap-free history holds.
func Seq(from, to uint64) []uint64 {
	out := make([]uint64, 0, to-from+1)
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// requireUTC checks that a time a store returned is set and in UTC.
func requireUTC(t *testing.T, got time.Time) {
	t.Helper()
	require.False(t, got.IsZero(), "time is zero")
	require.Equal(t, time.UTC, got.Location(), "time %v is not UTC", got)
}

// requireSameTime checks that got is the instant want, in UTC.
func requireSameTime(t *testing.T, want, got time.Time) {
	t.Helper()
	requireUTC(t, got)
	require.True(t, want.Equal(got), "want time %v, got %v", want, got)
}

// requireMessage checks that got is the message want, field by field.
func requireMessage(t *testing.T, want, got store.Message) {
	t.Helper()
	require.Equal(t, want.AppID, got.AppID, "app of message %d", want.ID)
	require.Equal(t, want.Topic, got.Topic, "topic of message %d", want.ID)
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, []byte(want.Body), []byte(got.Body), "body of message %d", want.ID)
	requireSameTime(t, want.PublishedAt, got.PublishedAt)
}

// requireMessages checks that got is exactly the messages want, in order.
func requireMessages(t *testing.T, want, got []store.Message) {
	t.Helper()
	require.Equal(t, IDs(want), IDs(got))
	for i := range want {
		requireMessage(t, want[i], got[i])
	}
}

// requireTopic checks that got is the topic want.
func requireTopic(t *testing.T, want, got store.Topic) {
	t.Helper()
	require.Equal(t, want.AppID, got.AppID)
	require.Equal(t, want.Name, got.Name)
	require.Equal(t, want.LastID, got.LastID, "last id of topic %q", want.Name)
	requireSameTime(t, want.CreatedAt, got.CreatedAt)
}

// requireApp checks that got is the app want.
func requireApp(t *testing.T, want, got store.App) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.Name, got.Name)
	requireSameTime(t, want.CreatedAt, got.CreatedAt)
}

// requireNotFound checks that err is (or wraps) store.ErrNotFound.
func requireNotFound(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, errors.Is(err, store.ErrConflict), "error %v is both not found and conflict", err)
}
