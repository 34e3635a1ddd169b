package hostile_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/hostile"
)

type apiAnswer struct {
	Status int
	Code   string
	Msg    string
	Header http.Header
}

// call makes one request and decodes its JSON error, if any.
func call(t *testing.T, method, url, key string, header http.Header, body io.Reader) apiAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string }
	}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = json.Unmarshal(raw, &e)
	return apiAnswer{resp.StatusCode, e.Error.Code, e.Error.Message, resp.Header}
}

// TestBadInputGetsAClearAnswer: each shape of bad input gets its own
// status and code, with a short message, and the server logs no error.
func TestBadInputGetsAClearAnswer(t *testing.T) {
	t.Parallel()
	var logs heraldtest.LogBuffer
	srv := heraldtest.StartWithLogger(t, heraldtest.Config(t), slog.New(slog.NewTextHandler(&logs, nil)))
	app := srv.NewApp(t, "t")
	base := srv.URL + "/v1/apps/" + app.ID
	t.Cleanup(func() { // after every subtest
		requireHistory(t, app, "t")
		// The departed client's request ends on the server after it is
		// gone; a publish after it makes sure it was answered, if at all.
		requirePublishes(t, app, "t", `"after"`)
		require.NotContains(t, logs.String(), "level=ERROR")
	})

	t.Run("topics of only dots", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"...", "%2E", "%2E%2E"} {
			a := call(t, http.MethodPut, base+"/topics/"+name, app.FullKey, nil, nil)
			require.Equal(t, http.StatusBadRequest, a.Status, name)
			require.Equal(t, "invalid_request", a.Code, name)
		}
	})
	t.Run("a 300 KB Last-Event-ID is not echoed", func(t *testing.T) {
		t.Parallel()
		a := call(t, http.MethodGet, base+"/topics/t/events", app.SubscribeKey,
			http.Header{"Last-Event-Id": {strings.Repeat("9x", 150<<10)}}, nil)
		require.Equal(t, http.StatusBadRequest, a.Status)
		require.Equal(t, "invalid_last_event_id", a.Code)
		require.Less(t, len(a.Msg), 200)
	})
	t.Run("a long unknown path is not echoed", func(t *testing.T) {
		t.Parallel()
		a := call(t, http.MethodGet, srv.URL+"/"+strings.Repeat("p", 100<<10), "", nil, nil)
		require.Equal(t, http.StatusNotFound, a.Status)
		require.Less(t, len(a.Msg), 300)
	})
	t.Run("the admin token is refused in the URL", func(t *testing.T) {
		t.Parallel()
		a := call(t, http.MethodGet, base+"/topics/t/events?access_token="+heraldtest.AdminToken, "", nil, nil)
		require.Equal(t, http.StatusUnauthorized, a.Status)
		require.Equal(t, "admin_token_in_url", a.Code)
	})
	t.Run("more than 10,000 query parameters", func(t *testing.T) {
		t.Parallel()
		q := strings.Repeat("topic=t&", 50_000)
		a := call(t, http.MethodGet, base+"/events?"+q, app.SubscribeKey, nil, nil)
		require.Equal(t, http.StatusBadRequest, a.Status)
		require.Equal(t, "invalid_query", a.Code)
		require.Contains(t, a.Msg, "10,000")
	})
	t.Run("65 topics in one stream", func(t *testing.T) {
		t.Parallel()
		q := url.Values{}
		for i := range 65 {
			q.Add("topic", fmt.Sprintf("t%d", i))
		}
		a := call(t, http.MethodGet, base+"/events?"+q.Encode(), app.SubscribeKey, nil, nil)
		require.Equal(t, http.StatusBadRequest, a.Status)
		require.Contains(t, a.Msg, "at most 64 topics")
	})
	t.Run("a malformed chunk", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/apps/%s/topics/t/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", app.ID, app.FullKey)
		resp, _, err := hostile.ReadStatus(c, time.Now().Add(patience))
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("a client that leaves mid-body", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		fmt.Fprintf(c, "POST /v1/apps/%s/topics/t/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Length: 100\r\n\r\n{\"a\":", app.ID, app.FullKey)
		c.Close()
		requireHealthy(t, srv)
	})
}
