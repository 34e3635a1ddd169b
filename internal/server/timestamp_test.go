package server_test

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// Every time Herald writes is RFC 3339 in UTC with exactly six fractional
// digits: the publish answer, history, the stream, the webhook body, and
// the records' created_at. A message published at a whole microsecond or
// second still shows its zeros, so the length never changes.
func TestTimesHaveSixFractionalDigitsEverywhere(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	recv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "t", recv.URL, "")
	require.NoError(t, err)
	r, _ := openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/t/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "t", 1)

	stamp := regexp.MustCompile(`"(published_at|created_at|failed_at|last_used_at|reported_at|at)":"([^"]*)"`)
	layout := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)
	check := func(where string, body []byte) {
		t.Helper()
		found := stamp.FindAllSubmatch(body, -1)
		require.NotEmpty(t, found, "%s: %s", where, body)
		for _, m := range found {
			require.Regexp(t, layout, string(m[2]), "%s: %s", where, m[1])
		}
	}
	call := func(method, path, key string, body []byte) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Less(t, resp.StatusCode, 300, string(b))
		return b
	}

	check("publish answer", call(http.MethodPost, "/v1/apps/"+app.ID+"/topics/t/messages", app.FullKey, []byte(`{"n":1}`)))
	check("history", call(http.MethodGet, "/v1/apps/"+app.ID+"/topics/t/messages", app.FullKey, nil))
	check("stream", []byte(nextData(t, r).Data))
	check("webhook body", recv.Next(t).Body)
	check("app list", call(http.MethodGet, "/v1/apps", heraldtest.AdminToken, nil))
	check("topic list", call(http.MethodGet, "/v1/apps/"+app.ID+"/topics", app.FullKey, nil))
	check("trigger list", call(http.MethodGet, "/v1/apps/"+app.ID+"/topics/t/triggers", app.FullKey, nil))
	check("key list", call(http.MethodGet, "/v1/apps/"+app.ID+"/keys", app.FullKey, nil))
}
