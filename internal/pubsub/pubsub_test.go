package pubsub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/pubsub"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

type testBundle struct {
	svc   *pubsub.Service
	store store.Store
	bc    *broadcast.Memory
	appID string
}

func setup(tb testing.TB) *testBundle {
	tb.Helper()
	st, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "herald.db"), sqlite.Options{})
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	bc, err := broadcast.NewMemory(broadcast.MemoryOptions{})
	require.NoError(tb, err)
	svc, err := pubsub.New(st, bc, pubsub.Options{MaxMessageBytes: 1024})
	require.NoError(tb, err)
	app, err := svc.CreateApp(tb.Context(), "fuzz")
	require.NoError(tb, err)
	_, _, err = svc.CreateTopic(tb.Context(), app.App.ID, "t")
	require.NoError(tb, err)
	return &testBundle{svc: svc, store: st, bc: bc, appID: app.App.ID}
}

// FuzzPublish feeds arbitrary bodies to the publish path over a real SQLite
// store: each is either refused as invalid, too large or too deep, storing
// nothing, or stored as one line of compact JSON that means the same as
// what was sent (numbers compared as written: 1e400 is valid JSON that no
// float64 holds) and reaches a live subscriber byte for byte. Each input
// gets its own subscription, so one failure does not fail every input
// after it.
func FuzzPublish(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}`, " [1,\n2] ", `"\u2028"`, "\"\xff\"", `{"a":`, ``, `1 2`, `"😀"`, `"\u0000"`, "\"\r\n\"",
		`{"deep":[[[[[[[[[[1]]]]]]]]]]}`, `nul`, `-0.0e+10`, `1e400`, `[1e400, -1E-400]`, `{"a":1,"a":2}`,
		`123456789012345678901234567890`, `"[[[["`,
	} {
		f.Add([]byte(seed))
	}
	b := setup(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		wake := make(chan struct{}, 1)
		sub, err := b.bc.Subscribe(t.Context(), b.appID, "t", broadcast.WakeChan(wake))
		require.NoError(t, err)
		before, err := b.store.GetTopic(t.Context(), b.appID, "t")
		require.NoError(t, err)
		msg, err := b.svc.Publish(t.Context(), b.appID, "t", body)
		if err != nil {
			require.True(t, errors.Is(err, pubsub.ErrInvalid) || errors.Is(err, pubsub.ErrTooLarge) || errors.Is(err, pubsub.ErrTooDeep),
				"unexpected error %v", err)
			after, err := b.store.GetTopic(t.Context(), b.appID, "t")
			require.NoError(t, err)
			require.Equal(t, before.LastID, after.LastID, "a refused message stores nothing")
			return
		}
		require.True(t, json.Valid(body) && utf8.Valid(body))
		require.NotContains(t, string(msg.Body), "\n")
		require.NotContains(t, string(msg.Body), "\r")
		require.Equal(t, decodeKeepingNumbers(t, body), decodeKeepingNumbers(t, msg.Body))
		evs, _, err := sub.Receive(nil)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, msg.ID, evs[0].ID)
		require.True(t, bytes.Equal(msg.Body, evs[0].Message))
	})
}

// decodeKeepingNumbers decodes one JSON value with its numbers as written.
func decodeKeepingNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}

func TestValidateTopic(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "orders", "A.b_c-9", ".a", "..a..", string(bytes.Repeat([]byte("x"), 128))} {
		require.NoError(t, pubsub.ValidateTopic(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "...", "a b", "a/b", "é", "a:b", "a,b", "a\n", string(bytes.Repeat([]byte("x"), 129))} {
		require.ErrorIs(t, pubsub.ValidateTopic(bad), pubsub.ErrInvalid, bad)
	}
}

// TestPublishRequestReplaysItsIdempotencyKey publishes twice with one key:
// the second gets the first message back, marked as a replay, and nothing
// is stored or broadcast for it.
func TestPublishRequestReplaysItsIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wake := make(chan struct{}, 1)
	sub, err := b.bc.Subscribe(t.Context(), b.appID, "t", broadcast.WakeChan(wake))
	require.NoError(t, err)
	var published int
	svc, err := pubsub.New(b.store, b.bc, pubsub.Options{PublishedFunc: func(time.Duration) { published++ }})
	require.NoError(t, err)

	first, err := svc.PublishRequest(t.Context(), pubsub.Publication{AppID: b.appID, Topic: "t", Body: []byte(`{"a": 1}`), IdempotencyKey: "k-1"})
	require.NoError(t, err)
	require.False(t, first.Replayed)
	again, err := svc.PublishRequest(t.Context(), pubsub.Publication{AppID: b.appID, Topic: "t", Body: []byte(`{"a": 1}`), IdempotencyKey: "k-1"})
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Message.ID, again.Message.ID)
	require.True(t, first.Message.PublishedAt.Equal(again.Message.PublishedAt))
	require.Equal(t, 1, published, "a replay is not a publish")

	evs, _, err := sub.Receive(nil)
	require.NoError(t, err)
	require.Len(t, evs, 1, "the replay was not broadcast")
	topic, err := b.store.GetTopic(t.Context(), b.appID, "t")
	require.NoError(t, err)
	require.Equal(t, first.Message.ID, topic.LastID, "nothing more was stored")
}

func TestValidateIdempotencyKey(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "k", "order-42 created", "~!@#$%^&*()", strings.Repeat("k", 255)} {
		require.NoError(t, pubsub.ValidateIdempotencyKey(ok), "%q", ok)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "tab\there", "new\nline", "nul\x00", "del\x7f", "café"} {
		require.ErrorIs(t, pubsub.ValidateIdempotencyKey(bad), pubsub.ErrInvalid, "%q", bad)
	}
}

// TestPublishRefusesMessagesNestedTooDeep: a message nested past MaxDepth
// is refused with ErrTooDeep and stores nothing; brackets inside strings
// do not count, and a message at the limit is taken.
func TestPublishRefusesMessagesNestedTooDeep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	svc, err := pubsub.New(b.store, b.bc, pubsub.Options{MaxDepth: 4})
	require.NoError(t, err)
	nest := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	_, err = svc.Publish(t.Context(), b.appID, "t", nest(4))
	require.NoError(t, err)
	_, err = svc.Publish(t.Context(), b.appID, "t", []byte(`{"a":{"b":{"c":"[[[[[[\"{{{{"}}}`))
	require.NoError(t, err, "brackets in strings are text")
	for _, deep := range [][]byte{nest(5), nest(10_000), []byte(`{"a":{"b":{"c":{"d":[1]}}}}`)} {
		_, err = svc.Publish(t.Context(), b.appID, "t", deep)
		require.ErrorIs(t, err, pubsub.ErrTooDeep)
	}
	topic, err := b.store.GetTopic(t.Context(), b.appID, "t")
	require.NoError(t, err)
	require.Equal(t, uint64(2), topic.LastID, "the refused ones stored nothing")

	_, err = pubsub.New(b.store, b.bc, pubsub.Options{MaxDepth: pubsub.MaxMaxDepth + 1})
	require.Error(t, err)
}

// TestPublishKeepsACompactBody checks a body sent compact is the stored
// message as it came, without a copy, and one with whitespace outside its
// strings, or in a buffer much larger than it, is stored compacted in a
// buffer of its own.
func TestPublishKeepsACompactBody(t *testing.T) {
	t.Parallel()
	b := setup(t)
	compact := []byte(`{"a":[1,"x y"],"b":{"c":null}}`)
	msg, err := b.svc.Publish(t.Context(), b.appID, "t", compact)
	require.NoError(t, err)
	require.Equal(t, string(compact), string(msg.Body))
	require.Same(t, &compact[0], &msg.Body[0], "kept, not copied")

	spaced := []byte(" {\"a\": [1, \"x y\"],\n\"b\":{\"c\":null}}\r\n")
	msg, err = b.svc.Publish(t.Context(), b.appID, "t", spaced)
	require.NoError(t, err)
	require.Equal(t, string(compact), string(msg.Body))

	roomy := append(make([]byte, 0, 4096), compact...)
	msg, err = b.svc.Publish(t.Context(), b.appID, "t", roomy)
	require.NoError(t, err)
	require.Equal(t, string(compact), string(msg.Body))
	require.NotSame(t, &roomy[0], &msg.Body[0], "a large buffer is not kept for a small message")

	_, err = b.svc.Publish(t.Context(), b.appID, "t", []byte(`{"a":1}}`))
	require.ErrorIs(t, err, pubsub.ErrInvalid, "compact but not JSON")
}
