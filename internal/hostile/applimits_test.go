package hostile_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestOneAppAtItsLimitsLeavesTheOthersAlone sets an app's own limits with
// PATCH /v1/apps/{app}: past them its streams, publishes and topics get 429
// naming the limit, with Retry-After, counted in /metrics by kind; another
// app on the same server is untouched; and what the limited app stored
// before is intact.
func TestOneAppAtItsLimitsLeavesTheOthersAlone(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	tenant := srv.NewApp(t, "t")
	other := srv.NewApp(t, "t")

	a := call(t, http.MethodPatch, srv.URL+"/v1/apps/"+tenant.ID, heraldtest.AdminToken, nil,
		strings.NewReader(`{"limits":{"streams":1,"publish_rate":0.001,"publish_burst":2,"topics":2,"triggers":2}}`))
	require.Equal(t, http.StatusOK, a.Status, a.Msg)
	a = call(t, http.MethodPatch, srv.URL+"/v1/apps/"+tenant.ID, tenant.FullKey, nil, strings.NewReader(`{"limits":{"streams":-1}}`))
	require.Equal(t, http.StatusForbidden, a.Status, "only the admin sets limits: an app key is a valid credential that may not")

	requireLimited := func(err error, code, names string) {
		t.Helper()
		var apiErr *client.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, http.StatusTooManyRequests, apiErr.Status)
		require.Equal(t, code, apiErr.Code)
		require.Contains(t, apiErr.Message, names)
	}

	// Publishes: a burst of 2, then the rate (one per 1000 s).
	requirePublishes(t, tenant, "t", `1`)
	requirePublishes(t, tenant, "t", `2`)
	_, err := tenant.Full.Publish(t.Context(), tenant.ID, "t", []byte(`3`))
	requireLimited(err, "rate_limited", "publish rate")
	a = call(t, http.MethodPost, srv.URL+"/v1/apps/"+tenant.ID+"/topics/t/messages", tenant.FullKey, nil, strings.NewReader(`4`))
	require.Equal(t, http.StatusTooManyRequests, a.Status)
	require.NotEmpty(t, a.Header.Get("Retry-After"))
	requirePublishes(t, other, "t", `"free"`)

	// Topics: it has one; one more, then no more (re-creating is fine).
	_, _, err = tenant.Full.CreateTopic(t.Context(), tenant.ID, "u")
	require.NoError(t, err)
	_, _, err = tenant.Full.CreateTopic(t.Context(), tenant.ID, "v")
	requireLimited(err, "limit_reached", "topics")
	_, _, err = tenant.Full.CreateTopic(t.Context(), tenant.ID, "u")
	require.NoError(t, err, "an existing topic is not a new one")
	_, _, err = other.Full.CreateTopic(t.Context(), other.ID, "v")
	require.NoError(t, err)

	// Triggers: two, over all its topics.
	for _, topic := range []string{"t", "u"} {
		_, err = tenant.Full.CreateTrigger(t.Context(), tenant.ID, topic, "http://127.0.0.1:9/hook", "")
		require.NoError(t, err)
	}
	_, err = tenant.Full.CreateTrigger(t.Context(), tenant.ID, "t", "http://127.0.0.1:9/hook", "")
	requireLimited(err, "limit_reached", "triggers")

	// Streams: one.
	url := srv.URL + "/v1/apps/" + tenant.ID + "/topics/t/events"
	first := openStream(t, url, tenant.SubscribeKey)
	defer first.Body.Close()
	require.Equal(t, http.StatusOK, first.StatusCode)
	second := openStream(t, url, tenant.SubscribeKey)
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, second.StatusCode, "%s", body)
	require.Contains(t, string(body), "limit_reached")
	require.NotEmpty(t, second.Header.Get("Retry-After"))
	theirs := openStream(t, srv.URL+"/v1/apps/"+other.ID+"/topics/t/events", other.SubscribeKey)
	theirs.Body.Close()
	require.Equal(t, http.StatusOK, theirs.StatusCode)

	raw := scrapeMetrics(t, srv.URL)
	for _, kind := range []string{"streams", "topics", "triggers"} {
		require.Contains(t, raw, `herald_limit_refusals_total{limit="`+kind+`"} 1`)
	}
	require.Contains(t, raw, `herald_limit_refusals_total{limit="publish_rate"} 2`)
	require.NotContains(t, raw, tenant.ID, "no app label")

	requireHistory(t, tenant, "t", `1`, `2`)

	// Lifting the limits (-1: unlimited) takes effect at once.
	a = call(t, http.MethodPatch, srv.URL+"/v1/apps/"+tenant.ID, heraldtest.AdminToken, nil,
		strings.NewReader(`{"limits":{"streams":-1,"publish_rate":-1,"topics":-1}}`))
	require.Equal(t, http.StatusOK, a.Status, a.Msg)
	requirePublishes(t, tenant, "t", `3`)
	_, _, err = tenant.Full.CreateTopic(t.Context(), tenant.ID, "v")
	require.NoError(t, err)
}

func openStream(t *testing.T, url, key string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	return resp
}

func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics") //nolint:noctx // a scrape in a test
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestABatchSpendsOneTokenPerMessage: a batch publish counts against the
// app's publish rate message by message, all or nothing.
func TestABatchSpendsOneTokenPerMessage(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	a := call(t, http.MethodPatch, srv.URL+"/v1/apps/"+app.ID, heraldtest.AdminToken, nil,
		strings.NewReader(`{"limits":{"publish_rate":0.001,"publish_burst":3}}`))
	require.Equal(t, http.StatusOK, a.Status, a.Msg)
	batch := func(n int) apiAnswer {
		items := make([]string, n)
		for i := range items {
			items[i] = `{"topic":"t","message":1}`
		}
		return call(t, http.MethodPost, srv.URL+"/v1/apps/"+app.ID+"/messages", app.FullKey, nil,
			strings.NewReader(`{"messages":[`+strings.Join(items, ",")+`]}`))
	}
	require.Equal(t, http.StatusAccepted, batch(2).Status)
	a = batch(2)
	require.Equal(t, http.StatusTooManyRequests, a.Status, "2 more than the 1 token left")
	require.Equal(t, "rate_limited", a.Code)
	require.Equal(t, http.StatusAccepted, batch(1).Status, "the refused batch spent nothing")
	requireHistory(t, app, "t", `1`, `1`, `1`)
}
