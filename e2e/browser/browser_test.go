// Package browser_test runs Herald's browser tests: real Herald servers
// started here, driven from a real headless Chromium (Debian's, at
// /usr/bin/chromium) by the Node script run.mjs with playwright-core. The
// cases themselves are in cases/; this file starts the servers, gives the
// script their addresses and keys, does for it what only Go can (restart a
// server, count requests, keep a server's log), and turns each case's
// result into a subtest. origins_test.go adds the pages of other origins.
//
// It fails, never skips, when Chromium, Node or node_modules are missing:
// ./scripts/test installs them.
package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// chromiumPath is Debian's Chromium. Browser downloads are not possible on
// the machines this runs on, so there is no fallback to look for.
const chromiumPath = "/usr/bin/chromium"

// runTimeout bounds the whole Node run; the cases take about 30 s.
const runTimeout = 3 * time.Minute

// serverInfo is one server as the script sees it: where it is and an app
// with its keys.
type serverInfo struct {
	URL          string `json:"url"`
	App          string `json:"app"`
	FullKey      string `json:"fullKey"`
	SubscribeKey string `json:"subscribeKey"`
}

// scriptEnv is passed to run.mjs as JSON in HERALD_E2E.
type scriptEnv struct {
	Chromium string                `json:"chromium"`
	Servers  map[string]serverInfo `json:"servers"`
	// Pages are the URLs of pages of other origins than Herald's:
	// "allowed" (listed in the cors server's CORSOrigins) and "refused".
	Pages     map[string]string `json:"pages"`
	Control   string            `json:"control"`
	Artifacts string            `json:"artifacts"`
	// Admin is the admin token of every server.
	Admin string `json:"admin"`
	// Receiver is a real webhook receiver: /ok answers 204, /fail 500,
	// /flaky 410 Gone until the control endpoint /heal, then 204.
	Receiver string `json:"receiver"`
}

// caseResult is one HERALD_CASE line of run.mjs.
type caseResult struct {
	Name      string   `json:"name"`
	OK        bool     `json:"ok"`
	Error     string   `json:"error"`
	MS        int      `json:"ms"`
	Artifacts []string `json:"artifacts"`
}

func TestBrowser(t *testing.T) {
	node := requireTools(t)
	h := startHarness(t)

	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	envJSON, err := json.Marshal(h.env)
	require.NoError(t, err)
	// No colour codes in the failure messages Playwright writes.
	cmd.Env = append(os.Environ(), "HERALD_E2E="+string(envJSON), "NO_COLOR=1", "FORCE_COLOR=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one writer: exec serializes the writes
	// Node starts Chromium as its child: on timeout, end the whole group so
	// no browser outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	require.NoError(t, cmd.Start(), "start node")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // always received below
	var runErr error
	for waiting := true; waiting; {
		select {
		case req := <-h.requests:
			// Served here, on the test's goroutine, so that heraldtest's
			// require calls may stop the test.
			req.reply <- h.serve(t, req)
		case runErr = <-done:
			waiting = false
		}
	}

	output := out.String()
	t.Logf("run.mjs output:\n%s", output)
	plan, results, err := parseOutput(output)
	if err != nil {
		t.Fatalf("run.mjs (exit: %v) did not report its cases: %v\noutput:\n%s", runErr, err, output)
	}
	require.NotEmpty(t, plan, "run.mjs planned no case")
	failed := false
	for _, name := range plan {
		r, ok := results[name]
		t.Run(name, func(t *testing.T) {
			if !ok {
				t.Fatalf("case %s reported no result (run.mjs exit: %v); see the output above", name, runErr)
			}
			for _, a := range r.Artifacts {
				t.Logf("artifact: %s", a)
			}
			if !r.OK {
				t.Fatalf("case %s failed after %d ms:\n%s", name, r.MS, r.Error)
			}
		})
		failed = failed || !ok || !r.OK
	}
	if runErr != nil && !failed {
		t.Fatalf("run.mjs failed although every case passed: %v\noutput:\n%s", runErr, output)
	}
}

// requireTools fails the test with what to do when a tool is missing, and
// returns the path of node.
func requireTools(t *testing.T) string {
	t.Helper()
	const fix = "./scripts/test installs what is missing (apt-get install -y chromium nodejs npm; npm ci in e2e/browser)"
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is not installed at %s (%v): the browser tests need Debian's chromium package; %s", chromiumPath, err, fix)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v): the browser tests need Node.js 20 or later; %s", err, fix)
	}
	// playwright-core needs Node.js 20 or later; an older one fails in ways
	// that do not say so.
	v, err := exec.CommandContext(t.Context(), node, "-p", "process.versions.node.split('.')[0]").Output()
	if err != nil {
		t.Fatalf("run %s: %v", node, err)
	}
	if major, err := strconv.Atoi(strings.TrimSpace(string(v))); err != nil || major < 20 {
		t.Fatalf("node at %s is version %s: the browser tests need Node.js 20 or later", node, strings.TrimSpace(string(v)))
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("e2e/browser/node_modules has no playwright-core (%v): run `npm ci` in e2e/browser; %s", err, fix)
	}
	return node
}

// harness is the servers the cases run against and the control endpoint
// run.mjs calls.
type harness struct {
	env      scriptEnv
	requests chan controlRequest
	restart  *heraldtest.Server // the server /restart restarts; only the test goroutine touches it
	counts   *requestCounter
	corsLog  *logBuffer // what the cors server logs
	healed   *atomic.Bool
}

type controlRequest struct {
	path  string
	query url.Values
	reply chan controlReply
}

type controlReply struct {
	status int
	body   any
}

func startHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{requests: make(chan controlRequest), counts: &requestCounter{}, healed: &atomic.Bool{}}

	info := func(s *heraldtest.Server, a heraldtest.App) serverInfo {
		return serverInfo{URL: s.URL, App: a.ID, FullKey: a.FullKey, SubscribeKey: a.SubscribeKey}
	}
	// main: the defaults. The dashboard case gets an app of its own on it,
	// so that its topic list (and its screenshot) holds only its topics.
	main := heraldtest.StartDefault(t)
	mainApp := main.NewApp(t)

	// lag: keeps 3 messages per topic and prunes at once, so that an old
	// Last-Event-ID is beyond the history.
	lagCfg := heraldtest.Config(t)
	lagCfg.HistoryKeep = 3
	lagCfg.HistoryMaxAge = time.Nanosecond
	lagCfg.PruneInterval = 10 * time.Millisecond
	lag := heraldtest.Start(t, lagCfg)

	// restart: restarted by /restart on the same address and data dir.
	// Nothing else in this test binary binds a port while it is down; a
	// server of another package's test process could, in theory, take it.
	h.restart = heraldtest.StartDefault(t)

	// proxy: main behind a reverse proxy that counts requests per path.
	proxy := h.startProxy(t, main.URL)
	// tokens: an app of main, seen through the proxy, with the topics the
	// README's browser example follows, which the expired-token case runs.
	tokensApp := main.NewApp(t, "orders", "stock")

	// cors: lists the origin of one page server in CORSOrigins, and not
	// another's; its log is kept for the cases to read.
	cors, corsApp, corsLog, pages := startCORS(t)
	h.corsLog = corsLog

	// cluster: two nodes on one Postgres database, for the dashboard's
	// view of every node.
	db := pgtest.NewDatabase(t)
	var cluster [2]*heraldtest.Server
	for i := range cluster {
		cfg := heraldtest.Config(t)
		cfg.DatabaseURL = db
		cluster[i] = heraldtest.Start(t, cfg)
	}
	clusterApp := cluster[0].NewApp(t, "orders")

	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := controlRequest{path: r.URL.Path, query: r.URL.Query(), reply: make(chan controlReply, 1)}
		var rep controlReply
		select {
		case h.requests <- req:
			select {
			case rep = <-req.reply:
			case <-r.Context().Done():
				return
			}
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_ = json.NewEncoder(w).Encode(rep.body) // run.mjs reports a failed read itself
	}))
	t.Cleanup(ctl.Close)

	artifacts := os.Getenv("HERALD_ARTIFACTS")
	if artifacts == "" {
		artifacts = "artifacts"
	}
	artifacts, err := filepath.Abs(artifacts)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(artifacts, 0o755), "create the artifacts directory")

	h.env = scriptEnv{
		Chromium: chromiumPath,
		Servers: map[string]serverInfo{
			"main":      info(main, mainApp),
			"dashboard": info(main, main.NewApp(t)),
			"webhooks":  info(main, main.NewApp(t)),
			"keys":      info(main, main.NewApp(t)),
			"health":    info(lag, lag.NewApp(t)),
			"cluster":   info(cluster[0], clusterApp),
			"cluster2":  info(cluster[1], clusterApp),
			"lag":       info(lag, lag.NewApp(t)),
			"restart":   info(h.restart, h.restart.NewApp(t)),
			"proxy":     {URL: proxy, App: mainApp.ID, FullKey: mainApp.FullKey, SubscribeKey: mainApp.SubscribeKey},
			"tokens":    {URL: proxy, App: tokensApp.ID, FullKey: tokensApp.FullKey, SubscribeKey: tokensApp.SubscribeKey},
			"cors":      info(cors, corsApp),
		},
		Pages:     pages,
		Control:   ctl.URL,
		Artifacts: artifacts,
		Admin:     heraldtest.AdminToken,
		Receiver:  startReceiver(t, h.healed),
	}
	return h
}

// serve answers one control request, on the test goroutine.
func (h *harness) serve(t *testing.T, req controlRequest) controlReply {
	t.Helper()
	switch req.path {
	case "/restart":
		if req.query.Get("server") != "restart" {
			return controlReply{http.StatusBadRequest, map[string]string{"error": "only the server named restart can be restarted"}}
		}
		h.restart = h.restart.Restart(t)
		return controlReply{http.StatusOK, map[string]string{"url": h.restart.URL}}
	case "/heal":
		h.healed.Store(true)
		return controlReply{http.StatusOK, map[string]bool{"healed": true}}
	case "/requests":
		return controlReply{http.StatusOK, map[string]any{"statuses": h.counts.statuses(req.query.Get("path"))}}
	case "/log":
		if req.query.Get("server") != "cors" {
			return controlReply{http.StatusBadRequest, map[string]string{"error": "only the log of the server named cors is kept"}}
		}
		return controlReply{http.StatusOK, map[string]any{"records": h.corsLog.records()}}
	}
	return controlReply{http.StatusNotFound, map[string]string{"error": "no control endpoint " + req.path}}
}

// requestCounter records the status of every request through the proxy,
// by URL path.
type requestCounter struct {
	mu   sync.Mutex
	seen map[string][]int // guarded by mu
}

func (c *requestCounter) add(path string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string][]int)
	}
	c.seen[path] = append(c.seen[path], status)
}

func (c *requestCounter) statuses(path string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int{}, c.seen[path]...)
}

// startProxy puts a reverse proxy in front of target and returns its URL.
// It counts at the server's door: every request it forwards, with the
// status the server answered.
func (h *harness) startProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	transport := &http.Transport{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the page's origin, as if there were no proxy
		},
		Transport: transport,
		ModifyResponse: func(resp *http.Response) error {
			h.counts.add(resp.Request.URL.Path, resp.StatusCode)
			return nil
		},
		// A stream the browser closes ends with a canceled request: normal
		// here, not worth a log line.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(func() {
		srv.Close()
		transport.CloseIdleConnections()
	})
	return srv.URL
}

// parseOutput reads run.mjs's HERALD_PLAN and HERALD_CASE lines.
func parseOutput(out string) (plan []string, results map[string]caseResult, err error) {
	results = make(map[string]caseResult)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "HERALD_PLAN "); ok {
			if err := json.Unmarshal([]byte(rest), &plan); err != nil {
				return nil, nil, fmt.Errorf("plan line %q: %w", rest, err)
			}
		}
		if rest, ok := strings.CutPrefix(line, "HERALD_CASE "); ok {
			var r caseResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return nil, nil, fmt.Errorf("case line %q: %w", rest, err)
			}
			results[r.Name] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read output: %w", err)
	}
	if plan == nil {
		return nil, nil, errors.New("no HERALD_PLAN line")
	}
	return plan, results, nil
}

// startReceiver starts the webhook receiver the dashboard's webhook cases
// point triggers at, and returns its URL.
func startReceiver(t *testing.T, healed *atomic.Bool) string {
	t.Helper()
	rcv := heraldtest.NewReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/flaky":
			if healed.Load() {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			http.Error(w, "this endpoint is gone", http.StatusGone)
		default:
			http.Error(w, "database down", http.StatusInternalServerError)
		}
	})
	return rcv.URL
}
