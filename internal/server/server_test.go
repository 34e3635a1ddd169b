package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// openStream connects a raw SSE stream and returns its frame reader.
func openStream(t *testing.T, url, key, lastID string) (*client.FrameReader, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return client.NewFrameReader(resp.Body), resp
}

// nextData returns the next frame that carries data, skipping id-only frames.
func nextData(t *testing.T, r *client.FrameReader) client.Frame {
	t.Helper()
	f, err := r.Next()
	require.NoError(t, err)
	return f
}

type wireEvent struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Message     json.RawMessage `json:"message"`
	PublishedAt time.Time       `json:"published_at"`
}

func TestPublishSubscribeRoundTripOddPayloads(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	r, resp := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", app.SubscribeKey, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	require.Empty(t, resp.Header.Get("Content-Encoding"))

	payloads := []string{
		`{"text":"line one\nline two"}`,
		`{"text":"crlf\r\nhere\rand cr"}`,
		"{\"sep\":\"\u2028 and \u2029 raw\"}",
		`{"sep":"\u2028 escaped"}`,
		`{"emoji":"😀🎉 ünïcödé"}`,
		`{"nul":"a\u0000b"}`,
		`"data: fake\n\nid: 999\n\nevent: lagged"`,
		"[1,\n  2,\n  3]",
		`null`,
		`12.5e3`,
	}
	for _, p := range payloads {
		_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(p))
		require.NoError(t, err)
	}
	for i, p := range payloads {
		f := nextData(t, r)
		require.Empty(t, f.Type)
		require.Equal(t, strconv.Itoa(i+1), f.ID)
		var ev wireEvent
		require.NoError(t, json.Unmarshal([]byte(f.Data), &ev))
		require.Equal(t, f.ID, ev.ID)
		require.Equal(t, "orders", ev.Topic)
		var want, got any
		require.NoError(t, json.Unmarshal([]byte(p), &want))
		require.NoError(t, json.Unmarshal(ev.Message, &got))
		require.Equal(t, want, got, "payload %d must parse back deep-equal", i)
		require.False(t, ev.PublishedAt.IsZero())
	}
}

func TestReplayWhilePublishingHasNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "ticks")
	const total = 600

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for i := range total {
			_, err := app.Full.Publish(context.Background(), app.ID, "ticks", fmt.Appendf(nil, `{"n":%d}`, i+1))
			if err != nil {
				t.Errorf("publish %d: %v", i+1, err)
				return
			}
		}
	})

	// Read a little, drop the connection, resume from the last id: repeat
	// until every message was seen.
	var seen []uint64
	lastID := "0"
	for len(seen) < total {
		ctx, cancel := context.WithCancel(t.Context())
		s := app.SubscribeOnly.Stream(ctx, app.ID, []string{"ticks"}, client.StreamOptions{LastEventID: lastID})
		for range 37 {
			ev, err := s.Next()
			require.NoError(t, err)
			require.Equal(t, client.EventMessage, ev.Type, "no lag expected: history covers everything")
			id, err := strconv.ParseUint(ev.Message.ID, 10, 64)
			require.NoError(t, err)
			seen = append(seen, id)
			lastID = ev.ID
			if len(seen) == total {
				break
			}
		}
		cancel()
		s.Close()
	}
	for i, id := range seen {
		require.Equal(t, uint64(i+1), id, "ids must be 1..N with no gap and no duplicate")
	}
}

func TestMultiTopicCursorResumesEveryTopic(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "a", "b")
	publish := func(topic string, n int) {
		for range n {
			_, err := app.Full.Publish(t.Context(), app.ID, topic, []byte(`{}`))
			require.NoError(t, err)
		}
	}
	url := srv.URL + "/v1/apps/" + app.ID + "/events?topic=a&topic=b"
	r, _ := openStream(t, url, app.SubscribeKey, "")
	publish("a", 2)
	publish("b", 1)
	var last string
	for range 3 {
		last = nextData(t, r).ID
	}
	require.Equal(t, "a:2,b:1", last)

	// Messages published while disconnected come back on resume, per topic.
	publish("b", 2)
	publish("a", 1)
	r2, _ := openStream(t, url, app.SubscribeKey, last)
	got := map[string][]string{}
	for range 3 {
		f := nextData(t, r2)
		var ev wireEvent
		require.NoError(t, json.Unmarshal([]byte(f.Data), &ev))
		got[ev.Topic] = append(got[ev.Topic], ev.ID)
		last = f.ID
	}
	require.Equal(t, map[string][]string{"a": {"3"}, "b": {"2", "3"}}, got)
	require.Equal(t, "a:3,b:3", last)
}

func TestFirstFrameIDLetsAnEarlyReconnectResume(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`1`))
	require.NoError(t, err)
	// Read the stream up to its first id-only frame, then disconnect.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+app.SubscribeKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	br := bufio.NewReader(resp.Body)
	var head strings.Builder
	for !strings.HasSuffix(head.String(), "id: 1\n\n") {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		head.WriteString(line)
	}
	resp.Body.Close()
	require.True(t, strings.HasPrefix(head.String(), "retry: 2000\n"), head.String())

	_, err = app.Full.Publish(t.Context(), app.ID, "t", []byte(`2`))
	require.NoError(t, err)
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", app.SubscribeKey, "1")
	f := nextData(t, r)
	require.Equal(t, "2", f.ID)
}

func TestReplayOlderThanHistorySignalsLag(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.HistoryKeep = 3
	cfg.HistoryMaxAge = time.Nanosecond
	cfg.PruneInterval = 10 * time.Millisecond
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	for i := range 10 {
		_, err := app.Full.Publish(t.Context(), app.ID, "t", fmt.Appendf(nil, "%d", i+1))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		msgs, err := app.Full.History(t.Context(), app.ID, "t", "0", 100)
		return err == nil && len(msgs) == 3
	}, 10*time.Second, 10*time.Millisecond)

	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", app.SubscribeKey, "2")
	f := nextData(t, r)
	require.Equal(t, "lagged", f.Type)
	require.JSONEq(t, `{"missed":5,"topic":"t"}`, f.Data)
	for want := 8; want <= 10; want++ {
		require.Equal(t, strconv.Itoa(want), nextData(t, r).ID)
	}
}

func TestTopicDeleteEndsStreams(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "doomed", "other")
	single, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/doomed/events", app.SubscribeKey, "")
	multi, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/events?topic=doomed&topic=other", app.SubscribeKey, "")
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTopics(t.Context(), app.ID)
		return err == nil && len(ts) == 2 && ts[0].Name == "doomed" && ts[0].Subscribers == 2
	}, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, app.Full.DeleteTopic(t.Context(), app.ID, "doomed"))

	f := nextData(t, single)
	require.Equal(t, "topic_deleted", f.Type)
	require.JSONEq(t, `{"topic":"doomed"}`, f.Data)
	_, err := single.Next()
	require.ErrorIs(t, err, io.EOF, "the stream ends after topic_deleted")

	f = nextData(t, multi)
	require.Equal(t, "topic_deleted", f.Type)
	_, err = app.Full.Publish(t.Context(), app.ID, "other", []byte(`"still here"`))
	require.NoError(t, err)
	f = nextData(t, multi)
	require.Contains(t, f.Data, `"still here"`, "the other topic of a multi-topic stream goes on")

	// A reconnect to the deleted topic gets 404, so a browser stops retrying.
	_, resp := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/doomed/events", app.SubscribeKey, "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	_, err = app.Full.Publish(t.Context(), app.ID, "doomed", []byte(`1`))
	requireAPIError(t, err, http.StatusNotFound, "topic_not_found")
}

func TestAppDeleteEndsStreamsAndKeys(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", app.SubscribeKey, "")
	require.NoError(t, srv.Admin.DeleteApp(t.Context(), app.ID))
	require.Equal(t, "topic_deleted", nextData(t, r).Type)
	_, err := app.Full.ListTopics(t.Context(), app.ID)
	requireAPIError(t, err, http.StatusUnauthorized, "unauthenticated")
	err = srv.Admin.DeleteApp(t.Context(), app.ID)
	requireAPIError(t, err, http.StatusNotFound, "app_not_found")
}

func requireAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var he *client.Error
	require.ErrorAs(t, err, &he)
	require.Equal(t, status, he.Status, he.Message)
	require.Equal(t, code, he.Code)
	require.NotEmpty(t, he.Message)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	a := srv.NewApp(t, "shared")
	b := srv.NewApp(t, "shared")
	_, err := b.Full.Publish(t.Context(), a.ID, "shared", []byte(`1`))
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	_, err = b.Full.ListTopics(t.Context(), a.ID)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	err = b.Full.DeleteTopic(t.Context(), a.ID, "shared")
	requireAPIError(t, err, http.StatusForbidden, "forbidden")
	_, resp := openStream(t, srv.URL+"/v1/apps/"+a.ID+"/topics/shared/events", b.SubscribeKey, "")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	_, err = b.Full.History(t.Context(), a.ID, "shared", "", 10)
	requireAPIError(t, err, http.StatusForbidden, "forbidden")

	// Same topic name, different apps: independent histories.
	_, err = a.Full.Publish(t.Context(), a.ID, "shared", []byte(`"a"`))
	require.NoError(t, err)
	msgs, err := b.Full.History(t.Context(), b.ID, "shared", "", 10)
	require.NoError(t, err)
	require.Empty(t, msgs)
	// An app key never manages apps.
	_, err = a.Full.ListApps(t.Context())
	requireAPIError(t, err, http.StatusUnauthorized, "unauthenticated")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`{"kept":true}`))
	require.NoError(t, err)
	pub := "/v1/apps/" + app.ID + "/topics/t/messages"
	huge := append(append([]byte(`"`), bytes.Repeat([]byte("x"), 64<<10)...), '"')

	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"malformed JSON", "POST", pub, app.FullKey, `{"a":`, 400, "invalid_request"},
		{"two values", "POST", pub, app.FullKey, `1 2`, 400, "invalid_request"},
		{"empty body", "POST", pub, app.FullKey, ``, 400, "invalid_request"},
		{"invalid UTF-8", "POST", pub, app.FullKey, "\"\xff\xfe\"", 400, "invalid_request"},
		{"too large", "POST", pub, app.FullKey, string(huge), 413, "message_too_large"},
		{"far too large", "POST", pub, app.FullKey, strings.Repeat(" ", 1<<20) + "1", 413, "message_too_large"},
		{"unknown topic", "POST", "/v1/apps/" + app.ID + "/topics/nope/messages", app.FullKey, `1`, 404, "topic_not_found"},
		{"bad topic name", "POST", "/v1/apps/" + app.ID + "/topics/a%20b/messages", app.FullKey, `1`, 400, "invalid_request"},
		{"long topic name", "PUT", "/v1/apps/" + app.ID + "/topics/" + strings.Repeat("x", 129), app.FullKey, ``, 400, "invalid_request"},
		{"unicode topic name", "PUT", "/v1/apps/" + app.ID + "/topics/caf%C3%A9", app.FullKey, ``, 400, "invalid_request"},
		{"no key", "POST", pub, "", `1`, 401, "unauthenticated"},
		{"garbage key", "POST", pub, "hk_nope_nope", `1`, 401, "unauthenticated"},
		{"wrong scope", "POST", pub, app.SubscribeKey, `1`, 403, "forbidden"},
		{"unknown app", "PUT", "/v1/apps/nope/topics/x", heraldtest.AdminToken, ``, 404, "app_not_found"},
		{"bad app body", "POST", "/v1/apps", heraldtest.AdminToken, `{"name":`, 400, "invalid_request"},
		{"empty app name", "POST", "/v1/apps", heraldtest.AdminToken, `{"name":""}`, 400, "invalid_request"},
		{"bad last event id", "GET", "/v1/apps/" + app.ID + "/topics/t/events?last_event_id=x%0Ay", app.SubscribeKey, ``, 400, "invalid_last_event_id"},
		{"no topics", "GET", "/v1/apps/" + app.ID + "/events", app.SubscribeKey, ``, 400, "invalid_request"},
		{"unknown stream topic", "GET", "/v1/apps/" + app.ID + "/events?topic=t&topic=nope", app.SubscribeKey, ``, 404, "topic_not_found"},
		{"bad history limit", "GET", "/v1/apps/" + app.ID + "/topics/t/messages?limit=0", app.SubscribeKey, ``, 400, "invalid_request"},
		{"unknown route", "GET", "/v2/nothing", "", ``, 404, "route_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var env struct {
				Error struct{ Code, Message string }
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
			require.Equal(t, tc.code, env.Error.Code)
			require.NotEmpty(t, env.Error.Message)
		})
	}
	t.Cleanup(func() {
		// Nothing above lost stored data.
		msgs, err := app.Full.History(context.Background(), app.ID, "t", "", 10)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.JSONEq(t, `{"kept":true}`, string(msgs[0].Message))
	})
}

func TestRestartKeepsAppsKeysTopicsAndHistory(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	for i := range 3 {
		_, err := app.Full.Publish(t.Context(), app.ID, "t", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	require.NoError(t, srv.Stop())

	srv2 := heraldtest.Start(t, cfg)
	c := client.New(srv2.URL, app.FullKey)
	msgs, err := c.History(t.Context(), app.ID, "t", "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	m, err := c.Publish(t.Context(), app.ID, "t", []byte(`"after restart"`))
	require.NoError(t, err)
	require.Equal(t, "4", m.ID, "ids continue across a restart")
}

func TestGeneratedAdminTokenIsKept(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.AdminToken = ""
	srv := heraldtest.Start(t, cfg)
	require.True(t, srv.GeneratedAdminToken)
	tok := srv.AdminToken
	_, err := client.New(srv.URL, tok).ListApps(t.Context())
	require.NoError(t, err)
	require.NoError(t, srv.Stop())
	srv2 := heraldtest.Start(t, cfg)
	require.False(t, srv2.GeneratedAdminToken)
	require.Equal(t, tok, srv2.AdminToken)
}

func TestSlowSubscriberLagsWithoutSlowingOthers(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.BufferSize = 64
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	// Far more than the socket buffers and the ring hold together.
	const total = 1000
	big := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 16<<10))

	// The slow one: a raw TCP client with a tiny receive buffer that stops
	// reading after the headers.
	slow := dialTiny(t, srv.Addr())
	fmt.Fprintf(slow, "GET /v1/apps/%s/topics/t/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", app.ID, app.SubscribeKey)
	slowR := bufio.NewReader(slow)
	status, err := slowR.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, status, "200")

	// The fast one reads everything; it connects on its first Next.
	fast := app.SubscribeOnly.Stream(t.Context(), app.ID, []string{"t"}, client.StreamOptions{})
	got := make(chan int, 1)
	go func() {
		n := 0
		for n < total {
			ev, err := fast.Next()
			if err != nil || ev.Type != client.EventMessage {
				break
			}
			n++
		}
		got <- n
	}()
	waitSubscribers(t, app, "t", 2)
	for range total {
		_, err := app.Full.Publish(t.Context(), app.ID, "t", big)
		require.NoError(t, err)
	}
	require.Equal(t, total, <-got, "a subscriber that never reads must not cost another one anything")

	// Now drain the slow one: it lost events and was told exactly how many,
	// before the gap.
	var delivered, missed, announced int
	last := 0
	fr := client.NewFrameReader(slowR)
	for delivered+missed < total {
		f, err := fr.Next()
		require.NoError(t, err)
		switch f.Type {
		case "lagged":
			var d struct{ Missed int }
			require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
			missed += d.Missed
			announced += d.Missed
		case "":
			id, err := strconv.Atoi(f.ID)
			require.NoError(t, err)
			gap := id - last - 1
			require.Equal(t, announced, gap, "every gap is announced by a lagged event just before it")
			announced, last = 0, id
			delivered++
		}
	}
	require.Positive(t, missed, "the slow subscriber fell behind and must have been told")
	require.Equal(t, total, delivered+missed)
}

func TestClientThatStopsReadingIsCutOffAtItsDeadline(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.BufferSize = 4
	cfg.WriteTimeout = 300 * time.Millisecond
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	slow := dialTiny(t, srv.Addr())
	fmt.Fprintf(slow, "GET /v1/apps/%s/topics/t/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", app.ID, app.SubscribeKey)
	waitSubscribers(t, app, "t", 1)
	requireCutOffWhileFlooding(t, srv, app)
	st := getStats(t, srv, app.ID, app.FullKey)
	require.Len(t, st.SlowDisconnects, 1, "the dashboard's health view lists the disconnect")
	require.Zero(t, st.Connections)
}

// requireCutOffWhileFlooding publishes 32 KiB messages to topic "t" of app
// until the server gives up on the one subscriber that never reads: its
// subscriber count drops to zero although the client never closed, and the
// metrics count one slow-consumer disconnect and no connection left.
func requireCutOffWhileFlooding(t *testing.T, srv *heraldtest.Server, app heraldtest.App) {
	t.Helper()
	big := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 32<<10))
	require.Eventually(t, func() bool {
		_, err := app.Full.Publish(t.Context(), app.ID, "t", big)
		require.NoError(t, err)
		ts, err := app.Full.ListTopics(t.Context(), app.ID)
		require.NoError(t, err)
		return ts[0].Subscribers == 0
	}, 20*time.Second, 20*time.Millisecond)
	metrics := scrape(t, srv.URL)
	require.Contains(t, metrics, "herald_slow_consumer_disconnects_total 1")
	require.Contains(t, metrics, "herald_sse_connections 0")
}

func dialTiny(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func waitSubscribers(t *testing.T, app heraldtest.App, topic string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		ts, err := app.Full.ListTopics(t.Context(), app.ID)
		if err != nil {
			return false
		}
		for _, tp := range ts {
			if tp.Name == topic {
				return tp.Subscribers == n
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	app := srv.NewApp(t, "t")
	_, err := app.Full.Publish(t.Context(), app.ID, "t", []byte(`1`))
	require.NoError(t, err)
	m := scrape(t, srv.URL)
	require.Contains(t, m, "herald_messages_published_total 1")
	require.Contains(t, m, "herald_publish_duration_seconds_count 1")
}

func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "t", 1)
	require.NoError(t, srv.Stop(), "a clean shutdown with an open stream")
	_, err := r.Next()
	require.Error(t, err, "the stream ended")
}

func TestConcurrentPublishersDeliverInIDOrder(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "hot")
	const publishers, each = 8, 100
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/hot/events", app.SubscribeKey, "")

	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				if _, err := app.Full.Publish(context.Background(), app.ID, "hot", []byte(`{}`)); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	for want := 1; want <= publishers*each; want++ {
		f := nextData(t, r)
		require.Empty(t, f.Type, "no lag expected")
		require.Equal(t, strconv.Itoa(want), f.ID, "ids arrive strictly increasing, with no gap")
	}
	wg.Wait()
}

// Not parallel: the server comes back on the port it had, which a server of
// a parallel test could otherwise take while it is free.
func TestStreamResumesGapFreeAcrossServerRestart(t *testing.T) {
	cfg := heraldtest.Config(t)
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")
	publish := func(c *client.Client, from, to int) {
		for i := from; i <= to; i++ {
			_, err := c.Publish(t.Context(), app.ID, "t", fmt.Appendf(nil, "%d", i))
			require.NoError(t, err)
		}
	}
	s := app.SubscribeOnly.Stream(t.Context(), app.ID, []string{"t"}, client.StreamOptions{LastEventID: "0", RetryDelay: 10 * time.Millisecond})
	defer s.Close()
	next := func(want int) {
		t.Helper()
		ev, err := s.Next()
		require.NoError(t, err)
		require.Equal(t, client.EventMessage, ev.Type)
		require.Equal(t, strconv.Itoa(want), ev.Message.ID)
	}
	publish(app.Full, 1, 3)
	for i := 1; i <= 3; i++ {
		next(i)
	}

	// Restart on the same address and data directory; publish while the
	// stream is reconnecting.
	require.NoError(t, srv.Stop())
	cfg.Addr = srv.Addr()
	srv2 := heraldtest.Start(t, cfg)
	publish(client.New(srv2.URL, app.FullKey), 4, 6)
	for i := 4; i <= 6; i++ {
		next(i)
	}
	require.Equal(t, 2, s.Connects, "the stream reconnected once, with Last-Event-ID")
}
