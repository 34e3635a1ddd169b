package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// FuzzBatchPublish sends arbitrary bodies to POST /v1/apps/{app}/messages
// of a real server on SQLite, over HTTP, and checks what a client relies
// on: the answer is never a server error; an answer other than 202 stored
// nothing (every topic's last id and the topic list are as before); a 202
// answers each message in request order, for its topic, and stored exactly
// the messages it did not replay, in request order, each meaning what was
// sent (numbers compared as written: 1e400 is valid JSON no float64
// holds). The server is shared by every input: idempotency keys of earlier
// inputs are replayed, which the checks allow for.
func FuzzBatchPublish(f *testing.F) {
	for _, seed := range []string{
		`{"messages":[{"topic":"a","message":{"n":1}}]}`,
		`{"messages":[{"topic":"a","message":1},{"topic":"b","message":"two"},{"topic":"a","message":[1e400,-0.0e+10]}]}`,
		`{"messages":[{"topic":"a","message":null,"idempotency_key":"k"},{"topic":"a","message":2,"idempotency_key":"k"}]}`,
		`{"messages":[{"topic":"a","message":1,"idempotency_key":"k"},{"topic":"b","message":1,"idempotency_key":"k"}]}`,
		`{"messages":[{"topic":"a","message":1},{"topic":"nope","message":2}]}`,
		`{"messages":[{"topic":"a"}]}`,
		`{"messages":[]}`,
		`{"messages":[{"topic":"..","message":1}]}`,
		`{"messages":[{"topic":"a","message":1}]} {}`,
		`{"messages":[{"topic":"a","message":1,"extra":true}]}`,
		`{"Messages":[{"Topic":"c","Message":"\u2028"}]}`,
		`{"messages":[{"topic":"c","message":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}]}`,
		`{"messages":[{"topic":"c","message":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}]}`,
		"{\"messages\":[{\"topic\":\"a\",\"message\":\"\xff\"}]}",
		`{"messages":null}`,
		`[]`,
		``,
		`{"messages":[{"topic":"a","message":123456789012345678901234567890,"idempotency_key":""}]}`,
	} {
		f.Add([]byte(seed))
	}
	cfg := heraldtest.Config(f)
	srv := heraldtest.Start(f, cfg)
	app := srv.NewApp(f, "a", "b", "c")
	url := srv.URL + "/v1/apps/" + app.ID + "/messages"
	hc := &http.Client{}
	f.Cleanup(hc.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, body []byte) {
		before := lastIDs(t, app)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+app.FullKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Less(t, resp.StatusCode, 500, "a server error: %s", answer)
		after := lastIDs(t, app)
		if resp.StatusCode != http.StatusAccepted {
			require.Equal(t, before, after, "a refused batch (%d %s) stored nothing", resp.StatusCode, answer)
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			require.NoError(t, json.Unmarshal(answer, &e), "a refusal is a JSON error: %s", answer)
			require.NotEmpty(t, e.Error.Code)
			return
		}

		// A 202 means the body was one JSON object of messages, as the
		// API reads it.
		var sent struct {
			Messages []struct {
				Topic          string          `json:"topic"`
				Message        json.RawMessage `json:"message"`
				IdempotencyKey string          `json:"idempotency_key"`
			} `json:"messages"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&sent))
		require.ErrorIs(t, dec.Decode(&struct{}{}), io.EOF)
		var got struct {
			Messages []client.BatchResult `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(answer, &got))
		require.Len(t, got.Messages, len(sent.Messages), "one result per message")

		stored := make(map[string][]json.RawMessage) // per topic, in request order
		last := make(map[string]uint64)
		for i, m := range got.Messages {
			s := sent.Messages[i]
			require.Equal(t, s.Topic, m.Topic, "result %d is for message %d's topic", i, i)
			id, err := strconv.ParseUint(m.ID, 10, 64)
			require.NoError(t, err)
			if m.Replayed {
				require.NotEmpty(t, s.IdempotencyKey, "only a message with an idempotency key is replayed")
				continue
			}
			require.Greater(t, id, last[m.Topic], "ids grow in request order within a topic")
			last[m.Topic] = id
			stored[m.Topic] = append(stored[m.Topic], s.Message)
		}
		for topic, was := range before {
			msgs, err := app.Full.History(t.Context(), app.ID, topic, was, 1000)
			require.NoError(t, err)
			require.Len(t, msgs, len(stored[topic]), "topic %s stored what was not replayed, no more", topic)
			for i, m := range msgs {
				require.Equal(t, decodeKeepingNumbers(t, stored[topic][i]), decodeKeepingNumbers(t, m.Message))
			}
			if len(msgs) > 0 {
				require.Equal(t, strconv.FormatUint(last[topic], 10), after[topic])
			}
		}
	})
}

// lastIDs is each topic of app and its last message's id.
func lastIDs(t *testing.T, app heraldtest.App) map[string]string {
	t.Helper()
	ts, err := app.Full.ListTopics(t.Context(), app.ID)
	require.NoError(t, err)
	out := make(map[string]string, len(ts))
	for _, tp := range ts {
		out[tp.Name] = tp.LastID
	}
	return out
}

// decodeKeepingNumbers decodes one JSON value with its numbers as written.
func decodeKeepingNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	require.False(t, errors.Is(err, io.EOF), "an empty message")
	require.NoError(t, err)
	return v
}
