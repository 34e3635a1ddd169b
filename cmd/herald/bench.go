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
	"strconv"
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

	// databaseURL is the Postgres database the servers bench starts use;
	// empty means SQLite. nodes is how many servers it starts on it, and
	// publishNode the one every message is published through (-1: each
	// message through the next, round-robin).
	databaseURL string
	// broadcastURL is the servers' --broadcast-url (NATS); empty keeps
	// LISTEN/NOTIFY.
	broadcastURL string
	nodes        int
	publishNode  int

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
	// batch is how many messages each publish request carries: 1 uses the
	// single publish route, more the batch route.
	batch int
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

Cluster mode: --database-url postgres://… starts the servers on that Postgres
database, and --nodes N starts N of them on it, which deliver each other's
messages through LISTEN/NOTIFY, or through NATS with --broadcast-url
nats://…. Subscribers go round-robin over the nodes;
messages are published through --publish-node (node 0 by default, or "all":
each message through the next node). The report splits end-to-end latency
into subscribers on the node a message was published through and those on
other nodes (cross-node). Use a scratch database (createdb herald_bench):
bench creates its own app and deletes it at the end, and warns when the
database already holds apps. Only --database-url selects Postgres: the
servers bench starts do not inherit HERALD_DATABASE_URL.

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
	fs.IntVar(&c.batch, "batch", 1, "messages per publish request: above 1, each request is a batch publish (POST /v1/apps/{app}/messages) of that many")
	fs.IntVar(&c.size, "size", 128, `bytes of each message, a JSON object {"seq":N,"t":UNIX_NANOS,"pad":"xx…"}`)
	fs.BoolVar(&c.idle, "idle", false, "connect the subscribers and publish nothing: measures the memory of an idle connection")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", time.Minute, "how long all subscribers together may take to connect")
	fs.IntVar(&c.connectConcurrency, "connect-concurrency", 100, "subscribers connecting at the same time")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.StringVar(&c.databaseURL, "database-url", "", "postgres:// URL of a scratch database: the servers bench starts use the Postgres store (cluster mode); empty: SQLite")
	fs.StringVar(&c.broadcastURL, "broadcast-url", "", "nats:// URL the servers bench starts carry cluster notices over, instead of LISTEN/NOTIFY; needs --database-url")
	fs.IntVar(&c.nodes, "nodes", 1, "servers to start on --database-url, each with its own port and data directory; more than 1 needs --database-url")
	publishNode := fs.String("publish-node", "0", `node every message is published through, from 0; "all": each message through the next node in turn`)
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
	check(c.batch >= 1 && c.batch <= 1000, "--batch must be 1 to 1000")
	check(c.connectTimeout > 0, "--connect-timeout must be positive")
	check(c.connectConcurrency >= 1, "--connect-concurrency must be at least 1")
	check(c.nodes >= 1, "--nodes must be at least 1")
	check(c.nodes <= 1 || c.databaseURL != "", "--nodes above 1 needs --database-url: nodes share a Postgres database")
	check(c.databaseURL == "" || strings.HasPrefix(c.databaseURL, "postgres://") || strings.HasPrefix(c.databaseURL, "postgresql://"),
		"--database-url must be a postgres:// URL")
	check(c.broadcastURL == "" || c.databaseURL != "", "--broadcast-url needs --database-url: NATS carries notices between nodes on one Postgres store")
	check(c.url == "" || (c.databaseURL == "" && c.nodes == 1), "--database-url and --nodes are for the servers bench starts, not with --url")
	if n, err := parsePublishNode(*publishNode, c.nodes); err != nil {
		errs = append(errs, err)
	} else {
		c.publishNode = n
	}
	check(c.batch == 1 || c.publishNode >= 0, `--batch above 1 needs one --publish-node, not "all": a batch goes through one node`)
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
		URL: cfg.url, OwnServer: cfg.url == "", Nodes: cfg.nodes, Subscribers: cfg.subscribers, Topics: cfg.topics,
		Rate: cfg.rate, Publishers: cfg.publishers, Size: cfg.size, Batch: cfg.batch,
		DurationS: cfg.duration.Seconds(), WarmupS: cfg.warmup.Seconds(), Idle: cfg.idle,
	}}
	if cfg.url == "" {
		rep.Config.Store = "sqlite"
		if cfg.databaseURL != "" {
			rep.Config.Store = "postgres"
			rep.Config.Broadcast = "notify"
			if cfg.broadcastURL != "" {
				rep.Config.Broadcast = "nats"
			}
		}
	}
	if cfg.idle {
		rep.Config.Rate, rep.Config.Publishers, rep.Config.Size, rep.Config.Batch = 0, 0, 0, 0
	} else {
		rep.Config.PublishNode = strconv.Itoa(cfg.publishNode)
		if cfg.publishNode < 0 {
			rep.Config.PublishNode = publishAll
		}
	}
	nodes := max(cfg.nodes, 1)
	route := benchRoute{nodes: nodes, topics: cfg.topics, publishNode: cfg.publishNode}

	limit, err := raiseFileLimit()
	if err != nil {
		say("warning: %v", err)
	}
	rep.Client.FileLimit = limit
	if limit > 0 && limit < uint64(cfg.subscribers)+64 {
		say("warning: the open file limit (%d) is below --subscribers; connections will fail", limit)
	}

	bases, token := []string{cfg.url}, cfg.token
	if cfg.url == "" {
		if nodes > 1 {
			say("starting %d servers on %s", nodes, redactURL(cfg.databaseURL))
		} else {
			say("starting a server (%s)", rep.Config.Store)
		}
		servers, err := startChildServers(ctx, nodes, cfg.databaseURL, cfg.broadcastURL)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, stopChildServers(servers)) }()
		bases, token = make([]string, nodes), servers[0].Token
		for i, s := range servers {
			bases[i] = s.URL
		}
		rep.Config.URL = bases[0]
		if nodes > 1 {
			rep.Config.URLs = bases
		}
	}
	baseURLs := make([]*url.URL, len(bases))
	for i, base := range bases {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want http://host:port or https://host", base)
		}
		baseURLs[i] = u
	}

	// One transport for the API calls, the publishers and the scrapes, with
	// idle connections enough that every publisher keeps its own to each
	// node, and no proxy: the subscribers dial the servers directly too.
	tr := &http.Transport{
		MaxIdleConns:        (cfg.publishers + 8) * nodes,
		MaxIdleConnsPerHost: cfg.publishers + 8,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	admin := client.New(bases[0], token, client.WithHTTPClient(hc))

	if cfg.databaseURL != "" {
		// The nodes share whatever else the database holds: say so, since
		// its load is not in the figures and a stale bench app is a sign
		// of an earlier run that did not finish.
		apps, err := admin.ListApps(ctx)
		if err != nil {
			return nil, fmt.Errorf("list apps: %w", err)
		}
		if len(apps) > 0 {
			names := make([]string, 0, min(len(apps), 5))
			for _, a := range apps[:min(len(apps), 5)] {
				names = append(names, a.Name)
			}
			say("warning: the database already holds %d app(s) (%s); use a scratch database (createdb herald_bench) for figures of bench's load alone",
				len(apps), strings.Join(names, ", "))
		}
	}
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
	appClients := make([]*client.Client, nodes)
	for i, base := range bases {
		appClients[i] = client.New(base, key, client.WithHTTPClient(hc))
	}
	topics := make([]string, cfg.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-%d", i)
		if _, _, err := appClients[0].CreateTopic(ctx, app.ID, topics[i]); err != nil {
			return nil, fmt.Errorf("create topic: %w", err)
		}
	}

	// scrape reads every node's /metrics; a failed scrape leaves that
	// node's snapshot nil and keeps the error for the report.
	metricErrs := make([]error, nodes)
	scrape := func() []promSnapshot {
		snaps := make([]promSnapshot, nodes)
		for i, base := range bases {
			m, err := scrapeMetrics(ctx, hc, base)
			if err != nil && metricErrs[i] == nil {
				metricErrs[i] = err
			}
			snaps[i] = m
		}
		return snaps
	}
	before := scrape()

	say("connecting %d subscribers", cfg.subscribers)
	window := &measureWindow{}
	connectStart := time.Now()
	pool, err := startSubscribers(ctx, baseURLs, route, app.ID, key, topics, cfg.subscribers, cfg.connectConcurrency, cfg.connectTimeout, window)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	// Each node counts only its own streams.
	for node := range nodes {
		perTopic := make([]int, len(topics))
		for i := range cfg.subscribers {
			if route.subscriberNode(i) == node {
				perTopic[i%len(topics)]++
			}
		}
		if err := waitSubscribed(ctx, appClients[node], app.ID, topics, perTopic, cfg.connectTimeout-time.Since(connectStart)); err != nil {
			if nodes > 1 {
				err = fmt.Errorf("node %d: %w", node, err)
			}
			return nil, err
		}
	}
	rep.Connect = benchReportConnect{Subscribers: cfg.subscribers, Seconds: time.Since(connectStart).Seconds()}

	// The measured window: server CPU and counters are differences between
	// a scrape at its start and one at its end (after the grace period, with
	// the subscribers still connected); so is the bench's own CPU.
	var (
		withSubs, windowStart, after []promSnapshot
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

	var byNode []deliveryTotals
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
		if cfg.rate > 0 {
			// The jobs the schedule makes due inside the window: no more
			// than the rate allows, however late the warmup's went out.
			window.setSchedule(dueJobs(cfg.warmup, cfg.rate), dueJobs(cfg.warmup+cfg.duration, cfg.rate))
		}
		plan := publishPlan{
			clients: appClients, route: route, app: app.ID, topics: topics, rate: cfg.rate, publishers: cfg.publishers,
			size: cfg.size, batch: cfg.batch, start: start, warmup: cfg.warmup, duration: cfg.duration,
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
		var totals deliveryTotals
		totals, byNode = pool.Totals(accepted)
		rep.Publish = &benchReportPublish{
			Accepted: pub.accepted.Load(), Errors: pub.failed.Load(), Requests: pub.requests.Load(),
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
		if nodes > 1 {
			local, cross := newLatencyMs(pool.LatencyOf(false)), newLatencyMs(pool.LatencyOf(true))
			rep.Delivery.LatencyPublishingNode, rep.Delivery.LatencyCrossNode = &local, &cross
		}
	}
	if cpuOK {
		v := (cpuEnd - cpuStart).Seconds()
		rep.Client.CPUSeconds = &v
	}
	servers := make([]benchReportServer, nodes)
	for i := range nodes {
		subs := 0
		for j := range cfg.subscribers {
			if route.subscriberNode(j) == i {
				subs++
			}
		}
		servers[i] = serverFigures(snapshotOf(before, i), snapshotOf(withSubs, i), snapshotOf(windowStart, i), snapshotOf(after, i),
			subs, windowEnded.Sub(windowBegan))
		if metricErrs[i] != nil {
			servers[i].MetricsError = metricErrs[i].Error()
		}
	}
	rep.Server = servers[0]
	if nodes > 1 {
		rep.Nodes = make([]benchReportNode, nodes)
		for i := range nodes {
			n := benchReportNode{
				Node: i, URL: bases[i], Server: servers[i],
				Publishes: !cfg.idle && (cfg.publishNode < 0 || cfg.publishNode == i),
			}
			if byNode != nil {
				t := byNode[i]
				n.Delivery = &benchReportNodeDelivery{
					Subscribers: t.Subscribers, Expected: t.Expected, Delivered: t.Delivered, Lost: t.Lost,
					Duplicates: t.Duplicates, OutOfOrder: t.OutOfOrder, LaggedEvents: t.LaggedEvents,
					Disconnected: t.Disconnected,
				}
			}
			rep.Nodes[i] = n
		}
	}
	return rep, nil
}

// snapshotOf is node i's snapshot of a round of scrapes, nil when that
// round was not taken.
func snapshotOf(round []promSnapshot, i int) promSnapshot {
	if i >= len(round) {
		return nil
	}
	return round[i]
}

// redactURL hides a password in a database URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
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
	if s.CPUSeconds != nil && s.EventsDelivered != nil && *s.EventsDelivered > 0 {
		us := 1e6 * *s.CPUSeconds / *s.EventsDelivered
		s.CPUPerDeliveryMicros = &us
	}
	s.EventsLagged = metricDelta(windowStart, after, metricLagged)
	s.SlowDisconnects = metricDelta(windowStart, after, metricSlowDisconnects)
	s.MessagesPublished = metricDelta(windowStart, after, metricPublished)
	if s.CPUSeconds != nil && s.MessagesPublished != nil && *s.MessagesPublished > 0 {
		us := 1e6 * *s.CPUSeconds / *s.MessagesPublished
		s.CPUPerPublishMicros = &us
	}
	s.PublishCommitP50 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .50)
	s.PublishCommitP99 = histogramQuantileDelta(windowStart, after, metricPublishDuration, .99)
	s.PGListenerReconnects = after.value(metricPGReconnects)
	s.PGQueueUsage = after.value(metricPGQueueUsage)
	s.PGNotificationsReceived = metricDelta(windowStart, after, metricPGReceived)
	s.PGHistoryReads = metricDelta(windowStart, after, metricPGHistoryReads)
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
