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
// store: each is either refused as invalid or too large, storing nothing, or
// stored as one line of compact JSON that means the same as what was sent
// and reaches a live subscriber byte for byte.
func FuzzPublish(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}`, " [1,\n2] ", `"\u2028"`, "\"\xff\"", `{"a":`, ``, `1 2`, `"😀"`, `"\u0000"`, "\"\r\n\"",
		`{"deep":[[[[[[[[[[1]]]]]]]]]]}`, `nul`, `-0.0e+10`,
	} {
		f.Add([]byte(seed))
	}
	b := setup(f)
	wake := make(chan struct{}, 1)
	sub, err := b.bc.Subscribe(f.Context(), b.appID, "t", wake)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		before, err := b.store.GetTopic(t.Context(), b.appID, "t")
		require.NoError(t, err)
		msg, err := b.svc.Publish(t.Context(), b.appID, "t", body)
		if err != nil {
			require.True(t, errors.Is(err, pubsub.ErrInvalid) || errors.Is(err, pubsub.ErrTooLarge), "unexpected error %v", err)
			after, err := b.store.GetTopic(t.Context(), b.appID, "t")
			require.NoError(t, err)
			require.Equal(t, before.LastID, after.LastID, "a refused message stores nothing")
			return
		}
		require.True(t, json.Valid(body) && utf8.Valid(body))
		require.NotContains(t, string(msg.Body), "\n")
		require.NotContains(t, string(msg.Body), "\r")
		var want, got any
		require.NoError(t, json.Unmarshal(body, &want))
		require.NoError(t, json.Unmarshal(msg.Body, &got))
		require.Equal(t, want, got)
		evs, _, err := sub.Receive(nil)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, msg.ID, evs[0].ID)
		require.True(t, bytes.Equal(msg.Body, evs[0].Message))
	})
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
	sub, err := b.bc.Subscribe(t.Context(), b.appID, "t", wake)
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
