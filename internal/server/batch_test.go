package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// eachStore runs f against a server on SQLite and one on Postgres, with
// cfg's defaults changed by tune.
func eachStore(t *testing.T, tune func(*config.Config), f func(t *testing.T, srv *heraldtest.Server)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := heraldtest.Config(t)
			if name == "postgres" {
				cfg.DatabaseURL = pgtest.NewDatabase(t)
			}
			if tune != nil {
				tune(&cfg)
			}
			f(t, heraldtest.Start(t, cfg))
		})
	}
}

// TestBatchPublish: a batch is stored in one go, answered in request order,
// delivered to subscribers as if each message were published alone, and a
// message whose key an earlier publish used replays it.
func TestBatchPublish(t *testing.T) {
	t.Parallel()
	eachStore(t, nil, func(t *testing.T, srv *heraldtest.Server) {
		app := srv.NewApp(t, "a", "b")
		ra, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/a/events", app.SubscribeKey, "")
		rb, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/b/events", app.SubscribeKey, "")
		waitSubscribers(t, app, "a", 1)
		waitSubscribers(t, app, "b", 1)
		single, _, err := app.Full.PublishIdempotent(t.Context(), app.ID, "a", "k-1", []byte(`{"single":true}`))
		require.NoError(t, err)

		got, err := app.Full.PublishBatch(t.Context(), app.ID, []client.BatchMessage{
			{Topic: "a", Message: json.RawMessage(`{"n": 1}`)},
			{Topic: "b", Message: json.RawMessage(`"two"`)},
			{Topic: "a", Message: json.RawMessage(`{"retry":true}`), IdempotencyKey: "k-1"},
			{Topic: "a", Message: json.RawMessage(`null`), IdempotencyKey: "k-2"},
		})
		require.NoError(t, err)
		require.Len(t, got, 4)
		for i, want := range []struct {
			id, topic string
			replayed  bool
		}{{"2", "a", false}, {"1", "b", false}, {single.ID, "a", true}, {"3", "a", false}} {
			require.Equal(t, want.id, got[i].ID, "message %d", i)
			require.Equal(t, want.topic, got[i].Topic, "message %d", i)
			require.Equal(t, want.replayed, got[i].Replayed, "message %d", i)
		}
		require.True(t, got[2].PublishedAt.Equal(single.PublishedAt))

		// Subscribers see each stored message once, in id order; the replay
		// is not delivered again.
		for _, want := range []struct{ id, data string }{{"1", `{"single":true}`}, {"2", `{"n":1}`}, {"3", `null`}} {
			f := nextData(t, ra)
			require.Equal(t, want.id, f.ID)
			require.Contains(t, f.Data, `"message":`+want.data)
		}
		f := nextData(t, rb)
		require.Equal(t, "1", f.ID)
		require.Contains(t, f.Data, `"message":"two"`)

		hist, err := app.Full.History(t.Context(), app.ID, "a", "", 10)
		require.NoError(t, err)
		require.Len(t, hist, 3)
		require.JSONEq(t, `{"n":1}`, string(hist[1].Message))
	})
}

// TestBatchPublishBadInput: every bad batch gets a clear JSON error, naming
// the first bad message where one is to blame, and stores nothing.
func TestBatchPublishBadInput(t *testing.T) {
	t.Parallel()
	const maxMessage = 1 << 10
	eachStore(t, func(c *config.Config) { c.MaxMessageBytes = maxMessage }, func(t *testing.T, srv *heraldtest.Server) {
		app := srv.NewApp(t, "t", "u")
		other := srv.NewApp(t, "t")
		_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`{"kept":true}`))
		require.NoError(t, err)
		_, _, err = app.Full.PublishIdempotent(t.Context(), app.ID, "u", "used-on-u", []byte(`1`))
		require.NoError(t, err)
		tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"t"}, "")
		require.NoError(t, err)

		item := func(topic, msg string) string { return fmt.Sprintf(`{"topic":%q,"message":%s}`, topic, msg) }
		batch := func(items ...string) string { return `{"messages":[` + strings.Join(items, ",") + `]}` }
		repeat := func(n int) string {
			items := make([]string, n)
			for i := range items {
				items[i] = item("t", `1`)
			}
			return batch(items...)
		}
		over := batch(item("t", `"`+strings.Repeat("x", 4<<20)+`"`))
		noIndex := -1
		for _, tc := range []struct {
			name, key, body string
			status          int
			code            string
			index           int
		}{
			{"empty list", app.FullKey, batch(), 400, "invalid_request", noIndex},
			{"no list", app.FullKey, `{}`, 400, "invalid_request", noIndex},
			{"1001 items", app.FullKey, repeat(1001), 400, "invalid_request", noIndex},
			{"item without topic", app.FullKey, batch(item("t", `1`), `{"message":1}`), 400, "invalid_request", 1},
			{"item without message", app.FullKey, batch(item("t", `1`), item("t", `2`), `{"topic":"t"}`), 400, "invalid_request", 2},
			{"bad topic name", app.FullKey, batch(item("a b", `1`)), 400, "invalid_request", 0},
			{"message over --max-message-bytes", app.FullKey, batch(item("t", `1`), item("t", `"`+strings.Repeat("x", maxMessage)+`"`)), 413, "message_too_large", 1},
			{"body over --max-batch-bytes", app.FullKey, over, 413, "batch_too_large", noIndex},
			{"unknown topic in the middle", app.FullKey, batch(item("t", `1`), item("u", `2`), item("nope", `3`), item("t", `4`)), 404, "topic_not_found", 2},
			{"duplicate keys", app.FullKey, batch(`{"topic":"t","message":1,"idempotency_key":"k"}`, item("t", `2`), `{"topic":"u","message":3,"idempotency_key":"k"}`), 400, "invalid_request", 2},
			{"key used with another topic", app.FullKey, batch(item("t", `1`), `{"topic":"t","message":2,"idempotency_key":"used-on-u"}`), 409, "idempotency_key_reused", 1},
			{"bad key", app.FullKey, batch(`{"topic":"t","message":2,"idempotency_key":"tab\there"}`), 400, "invalid_request", 0},
			{"invalid JSON", app.FullKey, `{"messages":[`, 400, "invalid_request", noIndex},
			{"invalid message JSON", app.FullKey, `{"messages":[{"topic":"t","message":}]}`, 400, "invalid_request", noIndex},
			{"unknown field", app.FullKey, `{"messages":[],"extra":1}`, 400, "invalid_request", noIndex},
			{"two objects", app.FullKey, batch(item("t", `1`)) + batch(item("t", `1`)), 400, "invalid_request", noIndex},
			{"trailing bracket", app.FullKey, batch(item("t", `1`)) + "]", 400, "invalid_request", noIndex},
			{"a list, not an object", app.FullKey, `[` + item("t", `1`) + `]`, 400, "invalid_request", noIndex},
			{"messages not a list", app.FullKey, `{"messages":{"topic":"t","message":1}}`, 400, "invalid_request", noIndex},
			{"huge topic name", app.FullKey, batch(item(strings.Repeat("t", 10_000), `1`)), 400, "invalid_request", 0},
			{"invalid UTF-8", app.FullKey, batch(item("t", `1`), item("t", "\"\xff\"")), 400, "invalid_request", 1},
			{"odd Unicode is fine but the topic is not", app.FullKey, batch(item("t", `"\u2028 🎉"`), item("caf\u00e9", `1`)), 400, "invalid_request", 1},
			{"another app's key", other.FullKey, batch(item("t", `1`)), 403, "forbidden", noIndex},
			{"subscribe-only key", app.SubscribeKey, batch(item("t", `1`)), 403, "forbidden", noIndex},
			{"browser token", tok.Token, batch(item("t", `1`)), 403, "forbidden", noIndex},
			{"no key", "", batch(item("t", `1`)), 401, "unauthenticated", noIndex},
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/apps/"+app.ID+"/messages", strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, tc.name)
			var env struct {
				Error struct {
					Code, Message string
					Index         *int
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&env)
			_ = resp.Body.Close()
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, env.Error.Message)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"), tc.name)
			require.Equal(t, tc.code, env.Error.Code, tc.name)
			require.NotEmpty(t, env.Error.Message, tc.name)
			if tc.index == noIndex {
				require.Nil(t, env.Error.Index, "%s: %s", tc.name, env.Error.Message)
			} else {
				require.NotNil(t, env.Error.Index, "%s: %s", tc.name, env.Error.Message)
				require.Equal(t, tc.index, *env.Error.Index, tc.name)
				// The message names the item once, first: not "message 2:
				// message 2 has no …".
				named := fmt.Sprintf("message %d", tc.index)
				require.True(t, strings.HasPrefix(env.Error.Message, named+": "), "%s: %s", tc.name, env.Error.Message)
				require.Equal(t, 1, strings.Count(env.Error.Message, named), "%s: %s", tc.name, env.Error.Message)
			}
			if tc.name == "item without message" {
				require.Contains(t, env.Error.Message, `"message"`, "the error names the missing field")
			}
			if tc.code == "topic_not_found" {
				require.Contains(t, env.Error.Message, `"nope"`, "the error names the topic")
			}
		}

		// Nothing above stored anything, and the server still publishes.
		for topic, n := range map[string]int{"t": 1, "u": 1} {
			msgs, err := app.Full.History(t.Context(), app.ID, topic, "", 10)
			require.NoError(t, err)
			require.Len(t, msgs, n, topic)
		}
		got, err := app.Full.PublishBatch(t.Context(), app.ID, []client.BatchMessage{{Topic: "t", Message: []byte(`2`)}, {Topic: "u", Message: []byte(`2`)}})
		require.NoError(t, err)
		require.Equal(t, "2", got[0].ID, "no failed batch took an id")
		require.Equal(t, "2", got[1].ID, "no failed batch took an id")

		// The SDK reports the index too.
		_, err = app.Full.PublishBatch(t.Context(), app.ID, []client.BatchMessage{{Topic: "t", Message: []byte(`1`)}, {Topic: "gone", Message: []byte(`1`)}})
		var he *client.Error
		require.ErrorAs(t, err, &he)
		require.NotNil(t, he.Index)
		require.Equal(t, 1, *he.Index)
		require.Equal(t, http.StatusNotFound, he.Status)
	})
}

// TestBatchPublishOf1000: the largest batch is taken whole.
func TestBatchPublishOf1000(t *testing.T) {
	t.Parallel()
	eachStore(t, nil, func(t *testing.T, srv *heraldtest.Server) {
		app := srv.NewApp(t, "t")
		msgs := make([]client.BatchMessage, 1000)
		for i := range msgs {
			msgs[i] = client.BatchMessage{Topic: "t", Message: fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, bytes.Repeat([]byte("p"), 100))}
		}
		got, err := app.Full.PublishBatch(t.Context(), app.ID, msgs)
		require.NoError(t, err)
		require.Len(t, got, 1000)
		for i, m := range got {
			require.Equal(t, fmt.Sprint(i+1), m.ID)
		}
	})
}

// TestBatchPublishReachesEveryNode: a batch published on one node of a
// cluster reaches subscribers on the others, each message once, in id
// order per topic, as if each had been published alone, over either
// transport of cluster notices.
func TestBatchPublishReachesEveryNode(t *testing.T) {
	t.Parallel()
	onEveryTransport(t, 2, batchPublishReachesEveryNode)
}

func batchPublishReachesEveryNode(t *testing.T, nodes []*heraldtest.Server) {
	t.Helper()
	app := nodes[0].NewApp(t, "a", "b")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var streams []<-chan client.Event
	for _, n := range nodes {
		s := client.New(n.URL, app.SubscribeKey).Stream(ctx, app.ID, []string{"a", "b"}, client.StreamOptions{})
		streams = append(streams, follow(t, s))
	}
	for _, n := range nodes {
		require.Eventually(t, func() bool { return subscribers(t, n, app, "a") == 1 }, 10*time.Second, 20*time.Millisecond)
	}
	big, _ := json.Marshal(strings.Repeat("x", 20_000)) // too large to ride in a notification
	msgs := []client.BatchMessage{
		{Topic: "a", Message: []byte(`1`)},
		{Topic: "b", Message: []byte(`2`)},
		{Topic: "a", Message: big},
		{Topic: "a", Message: []byte(`4`)},
	}
	_, err := client.New(nodes[0].URL, app.FullKey).PublishBatch(t.Context(), app.ID, msgs)
	require.NoError(t, err)
	for i, s := range streams {
		got := map[string][]string{}
		for range msgs {
			ev := next(t, s)
			require.Equal(t, client.EventMessage, ev.Type, "node %d", i)
			got[ev.Message.Topic] = append(got[ev.Message.Topic], ev.Message.ID+"="+string(ev.Message.Message))
		}
		require.Equal(t, []string{"1=1", "2=" + string(big), "3=4"}, got["a"], "node %d", i)
		require.Equal(t, []string{"1=2"}, got["b"], "node %d", i)
	}
}
