package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/client"
)

// benchConfig is what `herald bench` was asked to do.
type benchConfig struct {
	// url and token name a running server; url is empty when bench starts
	// its own.
	url   string
	token string

	subscribers int
	topics      int
	// rate is the total publish rate in messages per second; 0 publishes as
	// fast as the publishers can.
	rate       float64
	publishers int
	duration   time.Duration
	warmup     time.Duration
	// grace bounds the wait for in-flight events after the last publish; it
	// ends early once every expected delivery has arrived.
	grace time.Duration
	size  int
	idle  bool

	connectTimeout     time.Duration
	connectConcurrency int
	json               bool
}

const benchUsage = `usage: herald bench [flags]

Load-tests a Herald server: creates an app and topics, connects SSE
subscribers, publishes at a fixed rate (or as fast as possible with
--rate 0), and reports delivery, loss, latency and the server's CPU and
memory. Without --url it starts its own server (this binary's serve command on
127.0.0.1 and a temporary data directory); HERALD_* variables tune that
server. Messages sent during --warmup are not counted.

Flags:
`

// benchCmd is `herald bench`.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseBenchFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	rep, err := runBench(ctx, cfg, stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeBenchTable(stdout, rep)
}

// parseBenchFlags reads bench's flags. --url, --token and --data-dir are the
// client commands' own, but a server is targeted only when --url is given on
// the command line: the default address is no reason to load-test whatever
// listens there.
func parseBenchFlags(args []string, getenv func(string) string, stderr io.Writer) (benchConfig, error) {
	fs, cf := newClientFlagSet("bench", getenv, stderr)
	var c benchConfig
	maxRate := false
	fs.IntVar(&c.subscribers, "subscribers", 100, "SSE subscribers to connect, spread round-robin over the topics")
	fs.IntVar(&c.topics, "topics", 1, "topics to create and publish to, round-robin")
	fs.Float64Var(&c.rate, "rate", 100, "total messages per second over all topics; 0 publishes as fast as possible")
	fs.BoolVar(&maxRate, "max-rate", false, "publish as fast as possible (the same as --rate 0): measures publish throughput")
	fs.IntVar(&c.publishers, "publishers", 4, "concurrent publishers, each waiting for one publish's 202 before sending the next")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to publish and measure (with --idle: to hold the connections)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "how long to publish before measuring (with --idle: to settle before sampling memory)")
	fs.DurationVar(&c.grace, "grace", 5*time.Second, "longest wait for in-flight events after the last publish; it ends early when all have arrived")
	fs.IntVar(&c.size, "size", 128, `bytes of each message, a JSON object {"seq":N,"t":UNIX_NANOS,"pad":"xx…"}`)
	fs.BoolVar(&c.idle, "idle", false, "connect the subscribers and publish nothing: measures the memory of an idle connection")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", time.Minute, "how long all subscribers together may take to connect")
	fs.IntVar(&c.connectConcurrency, "connect-concurrency", 100, "subscribers connecting at the same time")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	// --url means something else here: given, it names the server to load;
	// absent, bench starts its own (the default address is not used).
	urlFlag := fs.Lookup("url")
	urlFlag.Usage = "server to load-test, with an admin token from --token; without --url bench starts its own server"
	urlFlag.DefValue = ""
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0, "herald bench [flags]"); err != nil {
		return benchConfig{}, err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "url" {
			c.url = cf.url
		}
	})
	if c.url != "" {
		tok, err := benchToken(cf)
		if err != nil {
			return benchConfig{}, err
		}
		c.token = tok
	}
	if maxRate {
		c.rate = 0
	}
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.subscribers >= 0, "--subscribers must not be negative")
	check(!c.idle || c.subscribers > 0, "--idle needs at least one subscriber")
	check(c.topics >= 1, "--topics must be at least 1")
	check(c.rate >= 0, "--rate must not be negative")
	check(c.publishers >= 1, "--publishers must be at least 1")
	check(c.duration > 0, "--duration must be positive")
	check(c.warmup >= 0, "--warmup must not be negative")
	check(c.grace >= 0, "--grace must not be negative")
	check(c.size >= 1, "--size must be positive")
	check(c.connectTimeout > 0, "--connect-timeout must be positive")
	check(c.connectConcurrency >= 1, "--connect-concurrency must be at least 1")
	if err := errors.Join(errs...); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return benchConfig{}, errUsage
	}
	return c, nil
}

// benchToken finds the admin token the way the other client commands do
// (clientFlags.client): --token or the environment, else the admin-token
// file in --data-dir. Bench needs the string itself, to create its app.
func benchToken(cf *clientFlags) (string, error) {
	if cf.token != "" {
		return cf.token, nil
	}
	b, err := os.ReadFile(filepath.Join(cf.dataDir, "admin-token"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no admin token: pass --token or set HERALD_ADMIN_TOKEN (none found in %s)", cf.dataDir)
		}
		return "", fmt.Errorf("read admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// runBench runs the benchmark cfg describes, writing progress to progress.
func runBench(ctx context.Context, cfg benchConfig, progress io.Writer) (rep *benchReport, err error) {
	say := func(format string, args ...any) { _, _ = fmt.Fprintf(progress, "bench: "+format+"\n", args...) }
	rep = &benchReport{Config: benchReportConfig{
		URL: cfg.url, OwnServer: cfg.url == "", Subscribers: cfg.subscribers, Topics: cfg.topics,
		Rate: cfg.rate, Publishers: cfg.publishers, Size: cfg.size,
		DurationS: cfg.duration.Seconds(), WarmupS: cfg.warmup.Seconds(), Idle: cfg.idle,
	}}
	if cfg.idle {
		rep.Config.Rate, rep.Config.Publishers, rep.Config.Size = 0, 0, 0
	}

	limit, err := raiseFileLimit()
	if err != nil {
		say("warning: %v", err)
	}
	rep.Client.FileLimit = limit
	if limit > 0 && limit < uint64(cfg.subscribers)+64 {
		say("warning: the open file limit (%d) is below --subscribers; connections will fail", limit)
	}

	base, token := cfg.url, cfg.token
	if base == "" {
		say("starting a server")
		var srv *childServer
		if srv, err = startChildServer(ctx); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, srv.Stop()) }()
		base, token = srv.URL, srv.Token
		rep.Config.URL = base
	}
	baseURL, err := url.Parse(base)
	if err != nil || (baseURL.Scheme != "http" && baseURL.Scheme != "https") || baseURL.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://host:port or https://host", base)
	}

	// One transport for the API calls, the publishers and the scrapes, with
	// idle connections enough that every publisher keeps its own, and no
	// proxy: the subscribers dial the server directly too.
	tr := &http.Transport{
		MaxIdleConns:        cfg.publishers + 8,
		MaxIdleConnsPerHost: cfg.publishers + 8,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	admin := client.New(base, token, client.WithHTTPClient(hc))

	app, err := admin.CreateApp(ctx, "bench-"+time.Now().UTC().Format("20060102-150405"))
	if err != nil {
		return nil, fmt.Errorf("create app: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := admin.DeleteApp(dctx, app.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete app %s: %w", app.ID, derr))
		}
	}()
	key, err := fullKey(app)
	if err != nil {
		return nil, err
	}
	appClient := client.New(base, key, client.WithHTTPClient(hc))
	topics := make([]string, cfg.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-%d", i)
		if _, _, err := appClient.CreateTopic(ctx, app.ID, topics[i]); err != nil {
			return nil, fmt.Errorf("create topic: %w", err)
		}
	}

	var metricErrs []error
	scrape := func() promSnapshot {
		m, err := scrapeMetrics(ctx, hc, base)
		if err != nil {
			metricErrs = append(metricErrs, err)
		}
		return m
	}
	before := scrape()

	say("connecting %d subscribers", cfg.subscribers)
	window := &measureWindow{}
	connectStart := time.Now()
	pool, err := startSubscribers(ctx, baseURL, app.ID, key, topics, cfg.subscribers, cfg.connectConcurrency, cfg.connectTimeout, window)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	perTopic := make([]int, len(topics))
	for i := range cfg.subscribers {
		perTopic[i%len(topics)]++
	}
	if err := waitSubscribed(ctx, appClient, app.ID, topics, perTopic, cfg.connectTimeout-time.Since(connectStart)); err != nil {
		return nil, err
	}
	rep.Connect = benchReportConnect{Subscribers: cfg.subscribers, Seconds: time.Since(connectStart).Seconds()}

	// The measured window: server CPU and counters are differences between
	// a scrape at its start and one at its end (after the grace period, with
	// the subscribers still connected); so is the bench's own CPU.
	var (
		withSubs, windowStart, after promSnapshot
		windowBegan, windowEnded     time.Time
		cpuStart, cpuEnd             time.Duration
		cpuOK                        bool
	)
	beginWindow := func() {
		windowStart, windowBegan = scrape(), time.Now()
		cpuStart, cpuOK = processCPU()
	}
	endWindow := func() {
		var ok bool
		cpuEnd, ok = processCPU()
		cpuOK = cpuOK && ok
		after, windowEnded = scrape(), time.Now()
	}

	if cfg.idle {
		say("holding %d idle connections for %s after %s to settle", cfg.subscribers, cfg.duration, cfg.warmup)
		if err := benchSleep(ctx, cfg.warmup); err != nil {
			return nil, err
		}
		withSubs = scrape()
		beginWindow()
		if err := benchSleep(ctx, cfg.duration); err != nil {
			return nil, err
		}
		endWindow()
	} else {
		withSubs = scrape()
		start := time.Now()
		window.start.Store(start.Add(cfg.warmup).UnixNano())
		window.end.Store(start.Add(cfg.warmup + cfg.duration).UnixNano())
		plan := publishPlan{
			client: appClient, app: app.ID, topics: topics, rate: cfg.rate, publishers: cfg.publishers,
			size: cfg.size, start: start, warmup: cfg.warmup, duration: cfg.duration,
		}
		say("publishing for %s (%s warmup, then %s measured)", cfg.warmup+cfg.duration, cfg.warmup, cfg.duration)
		var (
			wg  sync.WaitGroup
			pub *publishResult
		)
		wg.Go(func() { pub = runPublishers(ctx, plan, window) })
		if benchSleep(ctx, time.Until(start.Add(cfg.warmup))) == nil {
			beginWindow()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		accepted := pub.ledger.Measured()
		var expected uint64
		for i := range cfg.subscribers {
			expected += accepted[i%len(topics)].Len()
		}
		graceEnd := time.Now().Add(cfg.grace)
		for pool.unique.Load() < expected && time.Now().Before(graceEnd) {
			if err := benchSleep(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
		endWindow()
		pool.Close()
		totals := pool.Totals(accepted)
		rep.Publish = &benchReportPublish{
			Accepted: pub.accepted.Load(), Errors: pub.failed.Load(),
			PerSecond: float64(pub.accepted.Load()) / cfg.duration.Seconds(),
			Latency:   newLatencyMs(&pub.latency),
		}
		if err := pub.FirstError(); err != nil {
			rep.Publish.FirstError = err.Error()
		}
		if cfg.rate > 0 {
			sent := float64(pub.accepted.Load() + pub.failed.Load())
			rep.Publish.BehindSchedule = sent < 0.95*cfg.rate*cfg.duration.Seconds()
		}
		rep.Delivery = &benchReportDelivery{
			Expected: totals.Expected, Delivered: totals.Delivered, Lost: totals.Lost,
			Duplicates: totals.Duplicates, OutOfOrder: totals.OutOfOrder,
			LaggedEvents: totals.LaggedEvents, Missed: totals.Missed, Malformed: totals.Malformed,
			Disconnected: totals.Disconnected, FirstDisconnect: totals.FirstDisconnect,
			PerSecond: float64(totals.Delivered) / cfg.duration.Seconds(),
			Latency:   newLatencyMs(pool.Latency()),
		}
	}
	if cpuOK {
		v := (cpuEnd - cpuStart).Seconds()
		rep.Client.CPUSeconds = &v
	}
	rep.Server = serverFigures(before, withSubs, windowStart, after, cfg.subscribers, windowEnded.Sub(windowBegan))
	if len(metricErrs) > 0 {
		rep.Server.MetricsError = metricErrs[0].Error()
	}
	return rep, nil
}

// serverFigures works out the server section from the scrapes taken before
// the subscribers connected, once they all had, at the start of the measured
// window and at its end.
func serverFigures(before, withSubs, windowStart, after promSnapshot, subscribers int, window time.Duration) benchReportServer {
	s := benchReportServer{WindowS: window.Seconds()}
	if s.CPUSeconds = metricDelta(windowStart, after, metricCPU); s.CPUSeconds != nil && window > 0 {
		cores := *s.CPUSeconds / window.Seconds()
		s.CPUCores = &cores
	}
	s.RSSBefore = before.value(metricRSS)
	s.RSSWithSubscribers = withSubs.value(metricRSS)
	s.RSSAfter = after.value(metricRSS)
	s.RSSPerConnection = perConnection(metricDelta(before, withSubs, metricRSS), subscribers)
	s.HeapBefore = before.value(metricHeapInuse)
	s.HeapWithSubscribers = withSubs.value(metricHeapInuse)
	s.HeapPerConnection = perConnection(metricDelta(before, withSubs, metricHeapInuse), subscribers)
	s.StackWithSubscribers = withSubs.value(metricStackInuse)
	s.StackPerConnection = perConnection(metricDelta(before, withSubs, metricStackInuse), subscribers)
	s.Goroutines = withSubs.value(metricGoroutines)
	s.EventsDelivered = metricDelta(windowStart, after, metricDelivered)
	s.EventsLagged = metricDelta(windowStart, after, metricLagged)
	s.SlowDisconnects = metricDelta(windowStart, after, metricSlowDisconnects)
	s.MessagesPublished = metricDelta(windowStart, after, metricPublished)
	s.PublishCommitP50 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .50)
	s.PublishCommitP99 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .99)
	return s
}

// fullKey picks the app key that can publish, subscribe and manage.
func fullKey(app client.App) (string, error) {
	for _, k := range app.Keys {
		if slices.Contains(k.Scopes, "publish") && slices.Contains(k.Scopes, "subscribe") && slices.Contains(k.Scopes, "manage") {
			return k.Key, nil
		}
	}
	return "", fmt.Errorf("app %s came without a key holding publish, subscribe and manage", app.ID)
}

// waitSubscribed polls the server's topic list until each topic reports at
// least its expected count of live subscribers: the server's own view that
// every stream is registered, which also holds for a remote server behind a
// proxy.
func waitSubscribed(ctx context.Context, c *client.Client, app string, topics []string, want []int, timeout time.Duration) error {
	deadline := time.Now().Add(max(timeout, time.Second))
	for {
		ts, err := c.ListTopics(ctx, app)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		have := make(map[string]int, len(ts))
		for _, t := range ts {
			have[t.Name] = t.Subscribers
		}
		var short []string
		for i, name := range topics {
			if have[name] < want[i] {
				short = append(short, fmt.Sprintf("%s has %d of %d", name, have[name], want[i]))
			}
		}
		if len(short) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscribers not all registered by the server: %s", strings.Join(short, ", "))
		}
		if err := benchSleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// benchSleep waits for d or until ctx ends, returning ctx's error then.
func benchSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
