package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/store"
)

// history is a fake sse.History: the messages of each topic in memory.
type history struct {
	mu     sync.Mutex
	topics map[string][]store.Message // guarded by mu; by topic name
}

func (h *history) GetTopic(_ context.Context, appID, name string) (store.Topic, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs, ok := h.topics[name]
	if !ok {
		return store.Topic{}, fmt.Errorf("topic %q: %w", name, store.ErrNotFound)
	}
	var last uint64
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].ID
	}
	return store.Topic{AppID: appID, Name: name, LastID: last}, nil
}

func (h *history) History(_ context.Context, _, topic string, after uint64, limit int) ([]store.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []store.Message
	for _, m := range h.topics[topic] {
		if m.ID > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

var errKeyRevoked = errors.New("key revoked")

// testBundle is a Handler on a broadcast.Memory and a fake history, served
// over real HTTP by httptest.
type testBundle struct {
	mem  *broadcast.Memory
	hist *history
	h    *sse.Handler
	srv  *httptest.Server
}

func setup(t *testing.T, opts sse.Options, topics ...string) *testBundle {
	t.Helper()
	mem, err := broadcast.NewMemory(broadcast.MemoryOptions{})
	require.NoError(t, err)
	hist := &history{topics: map[string][]store.Message{}}
	for _, tp := range topics {
		hist.topics[tp] = nil
	}
	h := sse.New(mem, hist, opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := sse.Request{App: "app", Topics: q["topic"], LastEventID: r.Header.Get("Last-Event-ID"), KeyID: q.Get("key")}
		if q.Has("revoked") {
			req.KeyValidFunc = func(context.Context) error { return errKeyRevoked }
		}
		if u := r.URL.Query().Get("until"); u != "" {
			d, err := time.ParseDuration(u)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Until = time.Now().Add(d)
		}
		if err := h.Serve(w, r, req); err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, store.ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, sse.ErrBadLastEventID):
				status = http.StatusBadRequest
			case errors.Is(err, errKeyRevoked):
				status = http.StatusUnauthorized
			case errors.Is(err, sse.ErrShuttingDown):
				status = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), status)
		}
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, h.Close(ctx))
		srv.Close()
	})
	return &testBundle{mem: mem, hist: hist, h: h, srv: srv}
}

// publish stores a message under the next id of topic and broadcasts it,
// as pubsub does.
func (tb *testBundle) publish(t *testing.T, topic, body string) uint64 {
	t.Helper()
	tb.hist.mu.Lock()
	id := uint64(len(tb.hist.topics[topic]) + 1)
	m := store.Message{AppID: "app", Topic: topic, ID: id, Body: json.RawMessage(body), PublishedAt: time.Now()}
	tb.hist.topics[topic] = append(tb.hist.topics[topic], m)
	tb.hist.mu.Unlock()
	tb.mem.Publish(t.Context(), &broadcast.Event{App: "app", Topic: topic, ID: id, Message: m.Body, PublishedAt: m.PublishedAt})
	return id
}

// open starts a stream and waits until the handler counts it on every
// topic, so that events published from then on reach it.
func (tb *testBundle) open(t *testing.T, query, lastEventID string, topics ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tb.srv.URL+"/?"+query, nil)
	require.NoError(t, err)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return resp
	}
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	for _, tp := range topics {
		require.Eventually(t, func() bool { return tb.h.Subscribers("app", tp) >= 1 }, 30*time.Second, time.Millisecond)
	}
	return resp
}

// next returns the next frame after the start event that opens each
// stream (whose id is the starting position).
func next(t *testing.T, r *client.FrameReader) client.Frame {
	t.Helper()
	for {
		f, err := r.Next()
		require.NoError(t, err)
		if f.Type != "start" {
			return f
		}
	}
}

func TestStreamLiveInOrder(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	tb.publish(t, "t", `"before"`) // not sent: the stream starts after it
	resp := tb.open(t, "topic=t", "", "t")
	for i := range 3 {
		tb.publish(t, "t", fmt.Sprintf(`{"n":%d}`, i))
	}
	r := client.NewFrameReader(resp.Body)
	for i := range 3 {
		f := next(t, r)
		require.Empty(t, f.Type)
		require.Equal(t, fmt.Sprint(i+2), f.ID)
		var d struct {
			ID, Topic string
			Message   json.RawMessage
		}
		require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
		require.Equal(t, f.ID, d.ID)
		require.Equal(t, "t", d.Topic)
		require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i), string(d.Message))
	}
}

func TestStreamOpensWithRetryAndStartingID(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{Retry: 1500 * time.Millisecond}, "t")
	tb.publish(t, "t", `1`)
	tb.publish(t, "t", `2`)
	resp := tb.open(t, "topic=t", "", "t")
	br := bufio.NewReader(resp.Body)
	var head []string
	for len(head) < 7 {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		head = append(head, strings.TrimRight(line, "\n"))
	}
	// The position is the id of an event of its own with data: clients that
	// keep ids only from dispatched events keep it too.
	require.Equal(t, []string{"retry: 1500", ": connected", "", "event: start", "id: 2", `data: {"id":"2"}`, ""}, head,
		"a reconnect before any event resumes from the start position")
}

func TestStreamReplaysAfterLastEventIDWithoutDuplicates(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{ReplayBatch: 2}, "t")
	for i := range 5 {
		tb.publish(t, "t", fmt.Sprint(i))
	}
	resp := tb.open(t, "topic=t", "2", "t")
	tb.publish(t, "t", `"live"`)
	r := client.NewFrameReader(resp.Body)
	for _, want := range []string{"3", "4", "5", "6"} {
		require.Equal(t, want, next(t, r).ID, "replay in batches of 2, then live, each once")
	}
}

func TestStreamAnnouncesAGapExactly(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	resp := tb.open(t, "topic=t", "", "t")
	// Ids grow by one per message: a live event that skips ids (the ring
	// dropped them, or a cluster node missed them) is a gap of known size.
	tb.publish(t, "t", `1`)
	tb.mem.Publish(t.Context(), &broadcast.Event{App: "app", Topic: "t", ID: 5, Message: json.RawMessage(`5`), PublishedAt: time.Now()})
	r := client.NewFrameReader(resp.Body)
	require.Equal(t, "1", next(t, r).ID)
	f := next(t, r)
	require.Equal(t, "lagged", f.Type)
	require.JSONEq(t, `{"missed":3,"topic":"t"}`, f.Data)
	require.Equal(t, "5", next(t, r).ID, "the lagged event comes just before the gap")
}

func TestStreamTopicDeletedEndsIt(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	resp := tb.open(t, "topic=t", "", "t")
	tb.publish(t, "t", `1`)
	tb.mem.DropTopic(t.Context(), "app", "t")
	r := client.NewFrameReader(resp.Body)
	require.Equal(t, "1", next(t, r).ID, "what was published before the drop arrives first")
	f := next(t, r)
	require.Equal(t, "topic_deleted", f.Type)
	require.JSONEq(t, `{"topic":"t"}`, f.Data)
	_, err := r.Next()
	require.ErrorIs(t, err, io.EOF, "the stream ends cleanly")
	require.Eventually(t, func() bool { return tb.h.Subscribers("app", "t") == 0 }, 30*time.Second, time.Millisecond)
}

func TestStreamControlEventsEscapeTopicNames(t *testing.T) {
	t.Parallel()
	// sse does not validate names (its caller does); its frames must be
	// valid JSON whatever the name holds.
	const odd, other = `we"ird\name`, "b"
	tb := setup(t, sse.Options{}, odd, other)
	resp := tb.open(t, "topic="+strings.ReplaceAll(odd, `\`, "%5C")+"&topic=b", "", odd, other)
	tb.mem.Publish(t.Context(), &broadcast.Event{App: "app", Topic: odd, ID: 3, Message: json.RawMessage(`3`), PublishedAt: time.Now()})
	r := client.NewFrameReader(resp.Body)
	f := next(t, r)
	require.Equal(t, "lagged", f.Type)
	var d struct {
		Missed int
		Topic  string
	}
	require.NoError(t, json.Unmarshal([]byte(f.Data), &d), f.Data)
	require.Equal(t, odd, d.Topic)
	require.Equal(t, 2, d.Missed)
	tb.mem.DropTopic(t.Context(), "app", odd)
	f = next(t, r) // the message with id 3
	require.Empty(t, f.Type)
	f = next(t, r)
	require.Equal(t, "topic_deleted", f.Type)
	require.NoError(t, json.Unmarshal([]byte(f.Data), &d), f.Data)
	require.Equal(t, odd, d.Topic)
}

func TestStreamMultiTopicCursorResumes(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "a", "b")
	tb.publish(t, "a", `1`)
	resp := tb.open(t, "topic=b&topic=a", "", "a", "b")
	r := client.NewFrameReader(resp.Body)
	tb.publish(t, "b", `1`)
	require.Equal(t, "a:1,b:1", next(t, r).ID, "a cursor of every topic, in name order")
	tb.publish(t, "a", `2`)
	require.Equal(t, "a:2,b:1", next(t, r).ID)
	resp.Body.Close()

	tb.publish(t, "b", `2`)
	resp = tb.open(t, "topic=a&topic=b", "a:2,b:1", "a", "b")
	r = client.NewFrameReader(resp.Body)
	f := next(t, r)
	require.Equal(t, "a:2,b:2", f.ID, "resumed each topic where it was")
	require.Contains(t, f.Data, `"topic":"b"`)
}

func TestStreamHeartbeat(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{Heartbeat: 20 * time.Millisecond}, "t")
	resp := tb.open(t, "topic=t", "", "t")
	br := bufio.NewReader(resp.Body)
	pings := 0
	for pings < 2 {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if line == ": ping\n" {
			pings++
		}
	}
}

func TestStreamEndsAtUntil(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	resp := tb.open(t, "topic=t&until=300ms", "", "t")
	r := client.NewFrameReader(resp.Body)
	f := next(t, r)
	require.Equal(t, "token_expired", f.Type)
	var d struct {
		ExpiredAt time.Time `json:"expired_at"`
	}
	require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
	require.False(t, time.Now().Before(d.ExpiredAt), "not before the expiry")
	_, err := r.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestServeRefusals(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	require.Equal(t, http.StatusNotFound, tb.open(t, "topic=nope", "").StatusCode)
	require.Equal(t, http.StatusBadRequest, tb.open(t, "topic=t", "x:y:z").StatusCode)
	require.Equal(t, http.StatusBadRequest, tb.open(t, "topic=t", "-1").StatusCode)
	require.Zero(t, tb.h.Subscribers("app", "t"), "a refused stream is not counted")
}

func TestCloseEndsStreamsAndRefusesNew(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	resp := tb.open(t, "topic=t", "", "t")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, tb.h.Close(ctx))
	_, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream ended cleanly")
	require.Zero(t, tb.h.Subscribers("app", "t"))
	require.Equal(t, http.StatusServiceUnavailable, tb.open(t, "topic=t", "").StatusCode)
	require.NoError(t, tb.h.Close(ctx), "Close twice")
}

func TestClientLeavingEndsStream(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{Heartbeat: 10 * time.Millisecond}, "t")
	resp := tb.open(t, "topic=t", "", "t")
	resp.Body.Close()
	require.Eventually(t, func() bool { return tb.h.Subscribers("app", "t") == 0 }, 30*time.Second, time.Millisecond,
		"noticed at the next write at the latest")
}

func TestEndKeyEndsItsStreamsOnly(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{}, "t")
	mine := tb.open(t, "topic=t&key=k1", "", "t")
	other := tb.open(t, "topic=t&key=k2", "", "t")
	require.Eventually(t, func() bool { return tb.h.Subscribers("app", "t") == 2 }, 30*time.Second, time.Millisecond)
	require.Equal(t, 1, tb.h.EndKey("k1"))
	r := client.NewFrameReader(mine.Body)
	f := next(t, r)
	require.Equal(t, "key_revoked", f.Type)
	require.JSONEq(t, `{"key":"k1"}`, f.Data)
	_, err := r.Next()
	require.ErrorIs(t, err, io.EOF)
	require.Zero(t, tb.h.EndKey("k1"), "again: nothing left to end")

	tb.publish(t, "t", `1`)
	require.Equal(t, "1", next(t, client.NewFrameReader(other.Body)).ID, "another key's stream lives on")
	require.Equal(t, http.StatusUnauthorized, tb.open(t, "topic=t&key=k3&revoked", "").StatusCode,
		"a key found revoked once registered: Serve returns KeyValidFunc's error")
	require.Eventually(t, func() bool { return tb.h.Subscribers("app", "t") == 1 }, 30*time.Second, time.Millisecond)
}

// TestStreamSlowReaderCatchesUpInOrder has a client read nothing while far
// more is published than its socket and the ring hold: the fan-out worker
// finds the socket full, the stream's goroutine takes over (parked), the
// ring drops the oldest, and once the client reads again the stream goes
// back to direct writes. Across both switches every event arrives once, in
// order, and the one gap is announced with its exact size.
func TestStreamSlowReaderCatchesUpInOrder(t *testing.T) {
	t.Parallel()
	tb := setup(t, sse.Options{WriteTimeout: 5 * time.Minute}, "t") // the client pauses, but does not stop reading
	resp := tb.open(t, "topic=t", "", "t")
	pad := strings.Repeat("x", 8<<10)
	const n = 2000 // 16 MiB: more than the socket buffers (4 MiB or so) and the ring (512 events) together
	for i := range n {
		tb.publish(t, "t", fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))
	}
	r := client.NewFrameReader(resp.Body)
	var last, lagged uint64
	for last < n {
		f := next(t, r)
		switch f.Type {
		case "lagged":
			var d struct{ Missed uint64 }
			require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
			require.NotZero(t, d.Missed)
			lagged += d.Missed
			last += d.Missed // the next event is the one after the gap
		case "":
			require.Equal(t, fmt.Sprint(last+1), f.ID, "each event once, in order, after an exact lagged")
			last++
		default:
			require.FailNow(t, "unexpected event", "%q", f.Type)
		}
	}
	require.NotZero(t, lagged, "the client fell more than the ring behind")
	// Caught up: a new event comes next, and on its own.
	id := tb.publish(t, "t", `"after"`)
	require.Equal(t, fmt.Sprint(id), next(t, r).ID)
}

// TestStreamsUnderConcurrentPublishesGetEachEventOnceInOrder has many
// streams, on one topic or on several, while a publisher per topic
// publishes at once: the fan-out workers share one run queue, so a stream
// woken during its turn goes round again, maybe to another worker. Every
// stream gets every event of its topics once and in order (with -race: one
// worker at a time touches a stream).
func TestStreamsUnderConcurrentPublishesGetEachEventOnceInOrder(t *testing.T) {
	t.Parallel()
	topics := []string{"a", "b", "c", "d"}
	tb := setup(t, sse.Options{}, topics...)
	const perTopic = 25 // single-topic streams per topic
	const n = 400       // events per topic: fewer than the ring holds, so none may be lost
	type sub struct {
		topics []string
		r      *client.FrameReader
	}
	var subs []sub
	for _, tp := range topics {
		for range perTopic {
			subs = append(subs, sub{[]string{tp}, client.NewFrameReader(tb.open(t, "topic="+tp, "", tp).Body)})
		}
	}
	for range 4 {
		subs = append(subs, sub{topics, client.NewFrameReader(tb.open(t, "topic=a&topic=b&topic=c&topic=d", "", topics...).Body)})
	}
	require.Eventually(t, func() bool { return tb.h.Subscribers("app", "a") == perTopic+4 }, 30*time.Second, time.Millisecond)

	var wg sync.WaitGroup
	for _, tp := range topics {
		wg.Go(func() {
			for i := range n {
				tb.publish(t, tp, fmt.Sprintf(`{"n":%d}`, i))
			}
		})
	}
	for _, s := range subs {
		wg.Go(func() {
			last := map[string]uint64{}
			for got := 0; got < n*len(s.topics); got++ {
				f, err := s.r.Next()
				if !assert.NoError(t, err) {
					return
				}
				if f.Type == "start" {
					got--
					continue
				}
				if !assert.Empty(t, f.Type, "no control event: %q", f.Data) {
					return
				}
				var d struct{ ID, Topic string }
				if !assert.NoError(t, json.Unmarshal([]byte(f.Data), &d)) {
					return
				}
				want := fmt.Sprint(last[d.Topic] + 1)
				if !assert.Equal(t, want, d.ID, "topic %s: each event once, in order", d.Topic) {
					return
				}
				last[d.Topic]++
			}
		})
	}
	wg.Wait()
}
