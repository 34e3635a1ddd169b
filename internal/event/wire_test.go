package event_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/event"
)

// FuzzEncodeRoundTrip checks that any JSON value, once compacted as pubsub
// does, encodes to exactly one SSE frame that a spec-conformant parser reads
// back to the same value, id and topic: nothing in a message can inject a
// field or split the frame.
func FuzzEncodeRoundTrip(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}`, `"line\nbreak\r\nand\rcr"`, `"\u2028\u2029"`, "\"\u2028 raw\"", `"😀 emoji"`,
		`"\u0000 nul"`, `[1, 2,  3]`, `"data: injected\n\nid: 9"`, `null`, `{"k":"\r\n\r\n"}`,
	} {
		f.Add(seed, uint64(7), "orders")
	}
	f.Fuzz(func(t *testing.T, raw string, id uint64, topic string) {
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(raw)) != nil || compact.Len() == 0 {
			t.Skip("not JSON")
		}
		if !validTopic(topic) {
			t.Skip("not a topic name")
		}
		ev := &event.Event{Topic: topic, ID: id, Message: compact.Bytes(), PublishedAt: time.Unix(1, 2).UTC()}
		frame := event.EncodeFrame(ev)
		r := client.NewFrameReader(bytes.NewReader(frame))
		got, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, strconv.FormatUint(id, 10), got.ID)
		require.Empty(t, got.Type)
		var data struct {
			ID      string          `json:"id"`
			Topic   string          `json:"topic"`
			Message json.RawMessage `json:"message"`
		}
		require.NoError(t, json.Unmarshal([]byte(got.Data), &data))
		require.Equal(t, got.ID, data.ID)
		require.Equal(t, topic, data.Topic)
		// Compared as values with numbers kept as written: JSONEq decodes
		// into float64 and fails on a number beyond its range, valid JSON
		// that Herald passes through untouched.
		require.Equal(t, decodeNumbers(t, compact.Bytes()), decodeNumbers(t, data.Message))
		_, err = r.Next()
		require.Error(t, err, "one event must encode to exactly one frame")
	})
}

// decodeNumbers decodes one JSON value, its numbers as json.Number.
func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v))
	return v
}

func validTopic(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func TestEncodeEventOnceForManyReaders(t *testing.T) {
	t.Parallel()
	ev := &event.Event{Topic: "t", ID: 1, Message: json.RawMessage(`{}`), PublishedAt: time.Now()}
	calls := 0
	enc := func(e *event.Event) []byte { calls++; return event.EncodeFrame(e) }
	a, b := ev.Frame(enc), ev.Frame(enc)
	require.Equal(t, 1, calls)
	require.Same(t, &a[0], &b[0], "every reader gets the same bytes")
}

func TestAppendDataIsTheFramesData(t *testing.T) {
	t.Parallel()
	ev := &event.Event{Topic: "orders", ID: 1842, Message: json.RawMessage(`{"total":12}`), PublishedAt: time.Date(2026, 11, 28, 3, 25, 12, 123456000, time.UTC)}
	got, err := client.NewFrameReader(bytes.NewReader(event.EncodeFrame(ev))).Next()
	require.NoError(t, err)
	data := event.AppendData([]byte("prefix:"), ev)
	require.Equal(t, "prefix:"+got.Data, string(data), "appends, and the appended part is the frame's data")
	require.JSONEq(t, `{"id":"1842","topic":"orders","message":{"total":12},"published_at":"2026-11-28T03:25:12.123456Z"}`, got.Data)
}

// FuzzAppendString checks that any string, valid UTF-8 or not, appends as
// one JSON string that decodes back to it (invalid bytes as U+FFFD) and
// holds no raw CR or LF.
func FuzzAppendString(f *testing.F) {
	for _, seed := range []string{"orders", `a"b\c`, "line\nbreak\r", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe bad", "😀", "<&>"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := event.AppendString([]byte("x"), s)
		require.Equal(t, byte('x'), b[0], "appends")
		require.False(t, bytes.ContainsAny(b, "\r\n"), "no raw CR or LF")
		var got string
		require.NoError(t, json.Unmarshal(b[1:], &got))
		require.Equal(t, string([]rune(s)), got, "each invalid byte becomes U+FFFD")
	})
}

func TestControlFramesEscapeTopics(t *testing.T) {
	t.Parallel()
	topic := "a\"b\nc" // never a valid topic name; the encoder must not rely on that
	f, err := client.NewFrameReader(bytes.NewReader(event.AppendKeyRevoked(nil, topic))).Next()
	require.NoError(t, err)
	require.Equal(t, "key_revoked", f.Type)
	var k struct{ Key string }
	require.NoError(t, json.Unmarshal([]byte(f.Data), &k))
	require.Equal(t, topic, k.Key)
	for _, frame := range [][]byte{
		event.AppendLagged(nil, 3, topic),
		event.AppendTopicDeleted(nil, topic),
	} {
		f, err := client.NewFrameReader(bytes.NewReader(frame)).Next()
		require.NoError(t, err)
		var data struct {
			Topic  string `json:"topic"`
			Missed uint64 `json:"missed"`
		}
		require.NoError(t, json.Unmarshal([]byte(f.Data), &data), "%q", frame)
		require.Equal(t, topic, data.Topic)
	}
	f, err = client.NewFrameReader(bytes.NewReader(event.AppendLagged(nil, 3, "orders"))).Next()
	require.NoError(t, err)
	require.Equal(t, "lagged", f.Type)
	require.JSONEq(t, `{"missed":3,"topic":"orders"}`, f.Data)
	f, err = client.NewFrameReader(bytes.NewReader(event.AppendTokenExpired(nil, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))).Next()
	require.NoError(t, err)
	require.Equal(t, "token_expired", f.Type)
	require.JSONEq(t, `{"expired_at":"2026-01-02T03:04:05Z"}`, f.Data)
}

func TestAppendFrameWithID(t *testing.T) {
	t.Parallel()
	ev := &event.Event{Topic: "a", ID: 7, Message: json.RawMessage(`{"x":1}`), PublishedAt: time.Unix(1, 0)}
	plain, err := client.NewFrameReader(bytes.NewReader(event.EncodeFrame(ev))).Next()
	require.NoError(t, err)
	f, err := client.NewFrameReader(bytes.NewReader(event.AppendFrameWithID(nil, []byte("a:7,b:2"), event.EncodeFrame(ev)))).Next()
	require.NoError(t, err)
	require.Equal(t, "a:7,b:2", f.ID, "the cursor replaces the message id")
	require.Equal(t, plain.Data, f.Data, "the data is untouched")
}
