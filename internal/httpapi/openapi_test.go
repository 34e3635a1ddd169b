package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/httpapi"
)

// example is one entry of an operation's x-herald-examples: a request and
// the status it gets.
type example struct {
	Summary string            `json:"summary"`
	Auth    string            `json:"auth"`
	Params  map[string]string `json:"params"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	RawBody *string           `json:"rawBody"`
	Status  int               `json:"status"`
	Code    string            `json:"code"`
}

type operation struct {
	OperationID string                     `json:"operationId"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Examples    []example                  `json:"x-herald-examples"`
}

type document struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Responses map[string]json.RawMessage `json:"responses"`
		Schemas   struct {
			ErrorCode struct {
				Enum []string `json:"enum"`
			} `json:"ErrorCode"`
		} `json:"schemas"`
	} `json:"components"`
}

// fetchDocument reads the document as a client would, from a real server.
func fetchDocument(t *testing.T, srv *heraldtest.Server) (document, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.True(t, json.Valid(raw), "well-formed JSON")
	var doc document
	require.NoError(t, json.Unmarshal(raw, &doc))
	var tree map[string]any
	require.NoError(t, json.Unmarshal(raw, &tree))
	return doc, tree
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	t.Parallel()
	doc, tree := fetchDocument(t, heraldtest.StartDefault(t))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	info, _ := tree["info"].(map[string]any)
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])

	// Every $ref points at something in the document.
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				refs = append(refs, r)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(tree)
	require.NotEmpty(t, refs)
	for _, r := range refs {
		var node any = tree
		path, ok := strings.CutPrefix(r, "#/")
		require.True(t, ok, "only local refs: %s", r)
		for part := range strings.SplitSeq(path, "/") {
			m, ok := node.(map[string]any)
			require.True(t, ok, "%s: %s is not an object", r, part)
			node, ok = m[part]
			require.True(t, ok, "%s does not resolve at %q", r, part)
		}
	}

	// Operation ids are unique, and every operation says what it answers.
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			require.NotEmpty(t, op.OperationID, "%s %s", method, path)
			require.False(t, seen[op.OperationID], "duplicate operationId %s", op.OperationID)
			seen[op.OperationID] = true
			require.NotEmpty(t, op.Responses, "%s %s", method, path)
		}
	}
}

// TestOpenAPIDescribesEveryRoute compares the document with the API's route
// table, the one New registers: a route added without a description, or a
// description left behind by a removed route, fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc, _ := fetchDocument(t, heraldtest.StartDefault(t))
	var served []string
	for _, p := range httpapi.New(httpapi.Config{Metrics: http.NotFoundHandler()}).Patterns() {
		method, path, ok := strings.Cut(p, " ")
		require.True(t, ok, "pattern %q names its method", p)
		served = append(served, strings.ToLower(method)+" "+strings.TrimSuffix(path, "{$}"))
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			described = append(described, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(described)
	require.Equal(t, served, described)
}

// TestOpenAPIExamplesGetTheirStatus sends each operation's examples to a
// real server, each against a fresh app with topics "orders" (holding one
// message) and "stock", and checks the status, the media type and, for
// errors, the code the document gives.
func TestOpenAPIExamplesGetTheirStatus(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.WebhookRetries = []time.Duration{10 * time.Millisecond} // dead letters at once
	srv := heraldtest.Start(t, cfg)
	doc, _ := fetchDocument(t, srv)
	codes := doc.Components.Schemas.ErrorCode.Enum
	require.Contains(t, codes, "topic_not_allowed")

	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	n := 0
	for _, path := range paths {
		for method, op := range doc.Paths[path] {
			require.NotEmpty(t, op.Examples, "%s %s has no x-herald-examples", method, path)
			for _, ex := range op.Examples {
				n++
				t.Run(op.OperationID+"/"+ex.Summary, func(t *testing.T) {
					t.Parallel() // each example has an app of its own
					resp, body := send(t, srv, method, path, ex)
					require.Equal(t, ex.Status, resp.StatusCode, "%s %s: %s", method, path, body)
					documented, ok := op.Responses[strconv.Itoa(ex.Status)]
					require.True(t, ok, "status %d is not among the operation's responses", ex.Status)
					requireDocumentedMediaType(t, doc, documented, resp)
					if ex.Status >= 400 {
						var env struct {
							Error struct{ Code, Message string }
						}
						require.NoError(t, json.Unmarshal(body, &env), "%s", body)
						require.Equal(t, ex.Code, env.Error.Code, env.Error.Message)
						require.Contains(t, codes, env.Error.Code, "a code missing from ErrorCode")
						require.NotEmpty(t, env.Error.Message)
					}
				})
			}
		}
	}
	require.Greater(t, n, 30, "the document has examples")
}

func send(t *testing.T, srv *heraldtest.Server, method, path string, ex example) (*http.Response, []byte) {
	t.Helper()
	app := srv.NewApp(t, "orders", "stock")
	_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`{"n":1}`))
	require.NoError(t, err)
	tok, err := app.Full.CreateToken(t.Context(), app.ID, []string{"orders"}, "1h")
	require.NoError(t, err)

	params := map[string]string{"app": app.ID}
	for k, v := range ex.Params {
		switch v {
		case "$trigger": // a trigger of "orders"
			tr, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", "http://127.0.0.1:9/hook", "")
			require.NoError(t, err)
			v = tr.ID
		case "$key": // the id of the app's subscribe-only key
			v = strings.Split(app.SubscribeKey, "_")[1]
		case "$dead_letter": // a dead letter of "stock", whose receiver fails
			v = deadLetter(t, app, "stock", http.StatusInternalServerError)
		case "$gone_trigger": // the trigger of "gone", which a 410 disabled
			deadLetter(t, app, "gone", http.StatusGone)
			ts, err := app.Full.ListTriggers(t.Context(), app.ID, "gone")
			require.NoError(t, err)
			require.Len(t, ts, 1)
			v = ts[0].ID
		case "$gone_letter": // a dead letter of "gone", whose receiver is gone
			v = deadLetter(t, app, "gone", http.StatusGone)
		}
		params[k] = v
	}
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	require.NotContains(t, path, "{", "every path parameter has a value")
	query := ex.Query
	credential := map[string]string{
		"admin": heraldtest.AdminToken, "full": app.FullKey, "subscribe": app.SubscribeKey,
		"token": tok.Token, "forged-token": tok.Token[:strings.LastIndex(tok.Token, ".")+1] + "AAAA", "none": "",
	}
	cred, ok := credential[ex.Auth]
	require.True(t, ok, "unknown auth %q", ex.Auth)
	streaming := strings.HasSuffix(path, "/events")
	if streaming && strings.Contains(ex.Auth, "token") {
		// The way a page sends it: EventSource cannot set headers.
		if query != "" {
			query += "&"
		}
		query += "access_token=" + url.QueryEscape(cred)
		cred = ""
	}
	var body io.Reader
	switch {
	case ex.RawBody != nil:
		body = strings.NewReader(*ex.RawBody)
	case ex.Body != nil:
		body = bytes.NewReader(ex.Body)
	}
	u := srv.URL + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(t.Context(), strings.ToUpper(method), u, body)
	require.NoError(t, err)
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range ex.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		return resp, nil // a stream does not end by itself: its head is the answer
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// deadLetter makes a dead letter in app and returns its id: a trigger on
// topic whose receiver answers status, and a message to it. The example
// server retries once, 10 ms later, so a failing receiver makes a dead
// letter at once; 410 Gone makes one at the first attempt and disables the
// trigger.
func deadLetter(t *testing.T, app heraldtest.App, topic string, status int) string {
	t.Helper()
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(rcv.Close)
	_, _, err := app.Full.CreateTopic(t.Context(), app.ID, topic)
	require.NoError(t, err)
	tr, err := app.Full.CreateTrigger(t.Context(), app.ID, topic, rcv.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(t.Context(), app.ID, topic, []byte(`{"sku":"a1"}`))
	require.NoError(t, err)
	var id string
	require.Eventually(t, func() bool {
		dls, err := app.Full.DeadLetters(t.Context(), app.ID, 100)
		require.NoError(t, err)
		for _, dl := range dls {
			if dl.TriggerID == tr.ID {
				id = dl.ID
			}
		}
		return id != ""
	}, 10*time.Second, 10*time.Millisecond)
	return id
}

// requireDocumentedMediaType checks that the answer's media type is one the
// documented response lists (following a $ref to components/responses).
func requireDocumentedMediaType(t *testing.T, doc document, documented json.RawMessage, resp *http.Response) {
	t.Helper()
	var r struct {
		Ref     string                     `json:"$ref"`
		Content map[string]json.RawMessage `json:"content"`
	}
	require.NoError(t, json.Unmarshal(documented, &r))
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		require.NoError(t, json.Unmarshal(doc.Components.Responses[name], &r))
	}
	if len(r.Content) == 0 {
		return // documented without a body, as 204 is
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	var types []string
	for k := range r.Content {
		types = append(types, k)
	}
	require.True(t, slices.Contains(types, mt), "answered %s, documented %v", mt, types)
}
