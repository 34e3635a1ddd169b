// Package loadtest is Herald's load tool, the engine of `herald bench`: it
// starts servers (or targets a running one), creates an app and topics,
// connects SSE subscribers, publishes at a fixed rate or as fast as it can,
// and reports delivery, loss, latency and the servers' CPU and memory as a
// Report, which prints as a table or as JSON.
//
// Run is the whole of it. The CLI turns flags into Options; each field is
// the flag of the same name, and the errors of Validate name the flags.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/client"
)

// Options is what one run does. The zero value is not valid; the CLI's
// flag defaults are the usual starting point.
type Options struct {
	// URL and Token name a running server, loaded with an admin token; URL
	// empty: Run starts its own servers with ServeCommand.
	URL   string
	Token string
	// ServeCommand is the program and arguments that run `herald serve`
	// (the CLI gives its own binary and "serve"); Run appends the address,
	// data directory, admin token and log format. Needed when URL is empty.
	ServeCommand []string

	// DatabaseURL is the Postgres database the servers Run starts use;
	// empty means SQLite. Nodes is how many servers it starts on it, and
	// PublishNode the one every message is published through (PublishAll:
	// each message through the next, round-robin).
	DatabaseURL string
	// BroadcastURL is the servers' --broadcast-url (NATS); empty keeps
	// LISTEN/NOTIFY.
	BroadcastURL string
	Nodes        int
	PublishNode  int

	Subscribers int
	Topics      int
	// Rate is the total publish rate in messages per second; 0 publishes as
	// fast as the publishers can.
	Rate       float64
	Publishers int
	Duration   time.Duration
	Warmup     time.Duration
	// Grace bounds the wait for in-flight events after the last publish; it
	// ends early once every expected delivery has arrived.
	Grace time.Duration
	Size  int
	// Batch is how many messages each publish request carries: 1 uses the
	// single publish route, more the batch route.
	Batch int
	// Idle connects the subscribers and publishes nothing.
	Idle bool

	ConnectTimeout     time.Duration
	ConnectConcurrency int

	// Progress receives a line per phase and the warnings; nil discards
	// them.
	Progress io.Writer
}

// Validate reports every option out of range, joined, each naming its flag.
func (o Options) Validate() error {
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(o.Subscribers >= 0, "--subscribers must not be negative")
	check(!o.Idle || o.Subscribers > 0, "--idle needs at least one subscriber")
	check(o.Topics >= 1, "--topics must be at least 1")
	check(o.Rate >= 0, "--rate must not be negative")
	check(o.Publishers >= 1, "--publishers must be at least 1")
	check(o.Duration > 0, "--duration must be positive")
	check(o.Warmup >= 0, "--warmup must not be negative")
	check(o.Grace >= 0, "--grace must not be negative")
	check(o.Size >= 1, "--size must be positive")
	check(o.Batch >= 1 && o.Batch <= 1000, "--batch must be 1 to 1000")
	check(o.ConnectTimeout > 0, "--connect-timeout must be positive")
	check(o.ConnectConcurrency >= 1, "--connect-concurrency must be at least 1")
	check(o.Nodes >= 1, "--nodes must be at least 1")
	check(o.Nodes <= 1 || o.DatabaseURL != "", "--nodes above 1 needs --database-url: nodes share a Postgres database")
	check(o.DatabaseURL == "" || strings.HasPrefix(o.DatabaseURL, "postgres://") || strings.HasPrefix(o.DatabaseURL, "postgresql://"),
		"--database-url must be a postgres:// URL")
	check(o.BroadcastURL == "" || o.DatabaseURL != "", "--broadcast-url needs --database-url: NATS carries notices between nodes on one Postgres store")
	check(o.URL == "" || (o.DatabaseURL == "" && o.Nodes == 1), "--database-url and --nodes are for the servers bench starts, not with --url")
	check(o.PublishNode >= PublishAll && o.PublishNode < max(o.Nodes, 1), "--publish-node must name one of the --nodes")
	check(o.Batch == 1 || o.PublishNode >= 0, `--batch above 1 needs one --publish-node, not "all": a batch goes through one node`)
	return errors.Join(errs...)
}

// Run runs the load test opts describes and reports what it measured. It
// returns once every server it started has stopped and the app it created
// is deleted again; an error in that clean-up is returned with the report
// left out.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.URL == "" && len(opts.ServeCommand) == 0 {
		return nil, errors.New("no server: want a URL, or a ServeCommand to start one")
	}
	r := newRun(opts)
	r.checkFileLimit()

	bases, token, stop, err := r.startServers(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stop()) }()
	baseURLs, err := parseBaseURLs(bases)
	if err != nil {
		return nil, err
	}
	r.bases, r.baseURLs = bases, baseURLs

	// One transport for the API calls, the publishers and the scrapes, with
	// idle connections enough that every publisher keeps its own to each
	// node, and no proxy: the subscribers dial the servers directly too.
	tr := &http.Transport{
		MaxIdleConns:        (opts.Publishers + 8) * r.nodes,
		MaxIdleConnsPerHost: opts.Publishers + 8,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	r.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}

	deleteApp, err := r.createApp(ctx, client.New(bases[0], token, client.WithHTTPClient(r.hc)))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, deleteApp()) }()

	r.scrapes.before = r.scrape(ctx)
	window := &measureWindow{}
	pool, err := r.connectSubscribers(ctx, window)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	var byNode []deliveryTotals
	if opts.Idle {
		err = r.holdIdle(ctx)
	} else {
		byNode, err = r.publish(ctx, pool, window)
	}
	if err != nil {
		return nil, err
	}
	r.finish(byNode)
	return r.rep, nil
}

// run is one run's state, handed from phase to phase.
type run struct {
	opts  Options
	rep   *Report
	nodes int
	route nodeRoute

	bases    []string   // every node's URL
	baseURLs []*url.URL // the same, parsed
	hc       *http.Client
	app      string
	key      string           // the app's key that publishes, subscribes and manages
	clients  []*client.Client // with key, one per node
	topics   []string
	scrapes  scrapeRounds
}

// scrapeRounds are the rounds of /metrics scrapes the server figures come
// from, each a snapshot per node (nil while not taken), and the measured
// window between the last two, over which the bench's own CPU is read too.
type scrapeRounds struct {
	errs []error // per node: the first scrape that failed

	before      []promSnapshot // before the subscribers connect
	withSubs    []promSnapshot // once they all have
	windowStart []promSnapshot
	after       []promSnapshot // at the end of the grace period

	windowBegan, windowEnded time.Time
	cpuStart, cpuEnd         time.Duration
	cpuOK                    bool
}

func newRun(opts Options) *run {
	nodes := max(opts.Nodes, 1)
	return &run{
		opts:    opts,
		rep:     &Report{Config: newReportConfig(opts)},
		nodes:   nodes,
		route:   nodeRoute{nodes: nodes, topics: opts.Topics, publishNode: opts.PublishNode},
		scrapes: scrapeRounds{errs: make([]error, nodes)},
	}
}

// say writes a progress line.
func (r *run) say(format string, args ...any) {
	if r.opts.Progress != nil {
		_, _ = fmt.Fprintf(r.opts.Progress, "bench: "+format+"\n", args...)
	}
}

// newReportConfig is the report's echo of opts.
func newReportConfig(o Options) ReportConfig {
	c := ReportConfig{
		URL: o.URL, OwnServer: o.URL == "", Nodes: o.Nodes, Subscribers: o.Subscribers, Topics: o.Topics,
		Rate: o.Rate, Publishers: o.Publishers, Size: o.Size, Batch: o.Batch,
		DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), Idle: o.Idle,
	}
	if o.URL == "" {
		c.Store = "sqlite"
		if o.DatabaseURL != "" {
			c.Store = "postgres"
			c.Broadcast = "notify"
			if o.BroadcastURL != "" {
				c.Broadcast = "nats"
			}
		}
	}
	if o.Idle {
		c.Rate, c.Publishers, c.Size, c.Batch = 0, 0, 0, 0
	} else {
		c.PublishNode = strconv.Itoa(o.PublishNode)
		if o.PublishNode == PublishAll {
			c.PublishNode = publishAllName
		}
	}
	return c
}

// checkFileLimit raises the open file limit as far as it goes and warns
// when it is still too low for the subscribers.
func (r *run) checkFileLimit() {
	limit, err := raiseFileLimit()
	if err != nil {
		r.say("warning: %v", err)
	}
	r.rep.Client.FileLimit = limit
	if limit > 0 && limit < uint64(r.opts.Subscribers)+64 {
		r.say("warning: the open file limit (%d) is below --subscribers; connections will fail", limit)
	}
}

// startServers returns the nodes' URLs and the admin token: the remote
// server's, or those of the servers it starts, with stop to stop them.
func (r *run) startServers(ctx context.Context) (bases []string, token string, stop func() error, err error) {
	o := r.opts
	if o.URL != "" {
		return []string{o.URL}, o.Token, func() error { return nil }, nil
	}
	if r.nodes > 1 {
		r.say("starting %d servers on %s", r.nodes, redactURL(o.DatabaseURL))
	} else {
		r.say("starting a server (%s)", r.rep.Config.Store)
	}
	servers, err := startChildServers(ctx, r.nodes, childOptions{
		command: o.ServeCommand, databaseURL: o.DatabaseURL, broadcastURL: o.BroadcastURL,
	})
	if err != nil {
		return nil, "", nil, err
	}
	bases = make([]string, len(servers))
	for i, s := range servers {
		bases[i] = s.URL
	}
	r.rep.Config.URL = bases[0]
	if r.nodes > 1 {
		r.rep.Config.URLs = bases
	}
	return bases, servers[0].Token, func() error { return stopChildServers(servers) }, nil
}

// parseBaseURLs checks the nodes' URLs, which the subscribers dial
// themselves.
func parseBaseURLs(bases []string) ([]*url.URL, error) {
	us := make([]*url.URL, len(bases))
	for i, base := range bases {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want http://host:port or https://host", base)
		}
		us[i] = u
	}
	return us, nil
}

// createApp creates the run's app and its topics, and returns what deletes
// the app again (under a context of its own: it runs when ctx may have
// ended).
func (r *run) createApp(ctx context.Context, admin *client.Client) (deleteApp func() error, err error) {
	if r.opts.DatabaseURL != "" {
		if err := r.warnSharedDatabase(ctx, admin); err != nil {
			return nil, err
		}
	}
	app, err := admin.CreateApp(ctx, "bench-"+time.Now().UTC().Format("20060102-150405"))
	if err != nil {
		return nil, fmt.Errorf("create app: %w", err)
	}
	deleteApp = func() error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := admin.DeleteApp(dctx, app.ID); err != nil {
			return fmt.Errorf("delete app %s: %w", app.ID, err)
		}
		return nil
	}
	if err := r.setUpApp(ctx, app); err != nil {
		return nil, errors.Join(err, deleteApp())
	}
	return deleteApp, nil
}

// setUpApp takes the app's full key and creates the topics.
func (r *run) setUpApp(ctx context.Context, app client.App) error {
	key, err := fullKey(app)
	if err != nil {
		return err
	}
	r.app, r.key = app.ID, key
	r.clients = make([]*client.Client, r.nodes)
	for i, base := range r.bases {
		r.clients[i] = client.New(base, key, client.WithHTTPClient(r.hc))
	}
	r.topics = make([]string, r.opts.Topics)
	for i := range r.topics {
		r.topics[i] = fmt.Sprintf("bench-%d", i)
		if _, _, err := r.clients[0].CreateTopic(ctx, app.ID, r.topics[i]); err != nil {
			return fmt.Errorf("create topic: %w", err)
		}
	}
	return nil
}

// warnSharedDatabase says when the database holds apps already: the nodes
// share whatever else it holds, its load is not in the figures, and a stale
// bench app is a sign of an earlier run that did not finish.
func (r *run) warnSharedDatabase(ctx context.Context, admin *client.Client) error {
	apps, err := admin.ListApps(ctx)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	if len(apps) == 0 {
		return nil
	}
	names := make([]string, 0, min(len(apps), 5))
	for _, a := range apps[:min(len(apps), 5)] {
		names = append(names, a.Name)
	}
	r.say("warning: the database already holds %d app(s) (%s); use a scratch database (createdb herald_bench) for figures of bench's load alone",
		len(apps), strings.Join(names, ", "))
	return nil
}

// scrape reads every node's /metrics; a failed scrape leaves that node's
// snapshot nil and keeps the error for the report.
func (r *run) scrape(ctx context.Context) []promSnapshot {
	snaps := make([]promSnapshot, r.nodes)
	for i, base := range r.bases {
		m, err := scrapeMetrics(ctx, r.hc, base)
		if err != nil && r.scrapes.errs[i] == nil {
			r.scrapes.errs[i] = err
		}
		snaps[i] = m
	}
	return snaps
}

// beginWindow and endWindow bound the measured window: server CPU and
// counters are differences between a scrape at its start and one at its
// end (after the grace period, with the subscribers still connected); so
// is the bench's own CPU.
func (r *run) beginWindow(ctx context.Context) {
	s := &r.scrapes
	s.windowStart, s.windowBegan = r.scrape(ctx), time.Now()
	s.cpuStart, s.cpuOK = processCPU()
}

func (r *run) endWindow(ctx context.Context) {
	s := &r.scrapes
	var ok bool
	s.cpuEnd, ok = processCPU()
	s.cpuOK = s.cpuOK && ok
	s.after, s.windowEnded = r.scrape(ctx), time.Now()
}

// connectSubscribers connects the subscribers and waits until each node
// counts its own streams, which it does only once it has registered them.
func (r *run) connectSubscribers(ctx context.Context, window *measureWindow) (*subscriberPool, error) {
	o := r.opts
	r.say("connecting %d subscribers", o.Subscribers)
	connectStart := time.Now()
	pool, err := startSubscribers(ctx, r.baseURLs, r.route, r.app, r.key, r.topics, o.Subscribers, o.ConnectConcurrency, o.ConnectTimeout, window)
	if err != nil {
		return nil, err
	}
	for node := range r.nodes {
		perTopic, _ := r.route.subscribersOn(node, o.Subscribers)
		if err := waitSubscribed(ctx, r.clients[node], r.app, r.topics, perTopic, o.ConnectTimeout-time.Since(connectStart)); err != nil {
			if r.nodes > 1 {
				err = fmt.Errorf("node %d: %w", node, err)
			}
			pool.Close()
			return nil, err
		}
	}
	r.rep.Connect = ReportConnect{Subscribers: o.Subscribers, Seconds: time.Since(connectStart).Seconds()}
	return pool, nil
}

// holdIdle keeps the subscribers connected with nothing published: the
// window measures what idle connections cost.
func (r *run) holdIdle(ctx context.Context) error {
	o := r.opts
	r.say("holding %d idle connections for %s after %s to settle", o.Subscribers, o.Duration, o.Warmup)
	if err := sleep(ctx, o.Warmup); err != nil {
		return err
	}
	r.scrapes.withSubs = r.scrape(ctx)
	r.beginWindow(ctx)
	if err := sleep(ctx, o.Duration); err != nil {
		return err
	}
	r.endWindow(ctx)
	return nil
}

// publish runs the publishers through the warmup and the measured window,
// waits out the grace period, and fills in the publish and delivery
// sections. It returns the delivery per node.
func (r *run) publish(ctx context.Context, pool *subscriberPool, window *measureWindow) ([]deliveryTotals, error) {
	o := r.opts
	r.scrapes.withSubs = r.scrape(ctx)
	start := time.Now()
	window.start.Store(start.Add(o.Warmup).UnixNano())
	window.end.Store(start.Add(o.Warmup + o.Duration).UnixNano())
	if o.Rate > 0 {
		// The jobs the schedule makes due inside the window: no more
		// than the rate allows, however late the warmup's went out.
		window.setSchedule(dueJobs(o.Warmup, o.Rate), dueJobs(o.Warmup+o.Duration, o.Rate))
	}
	plan := publishPlan{
		clients: r.clients, bases: r.baseURLs, key: r.key, route: r.route, app: r.app, topics: r.topics, rate: o.Rate, publishers: o.Publishers,
		size: o.Size, batch: o.Batch, start: start, warmup: o.Warmup, duration: o.Duration,
	}
	r.say("publishing for %s (%s warmup, then %s measured)", o.Warmup+o.Duration, o.Warmup, o.Duration)
	var (
		wg  sync.WaitGroup
		pub *publishResult
	)
	wg.Go(func() { pub = runPublishers(ctx, plan, window) })
	if sleep(ctx, time.Until(start.Add(o.Warmup))) == nil {
		r.beginWindow(ctx)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	accepted := pub.ledger.Measured()
	if err := awaitDeliveries(ctx, pool, expectedDeliveries(accepted, o.Subscribers), o.Grace); err != nil {
		return nil, err
	}
	r.endWindow(ctx)
	pool.Close()
	totals, byNode := pool.Totals(accepted)
	r.rep.Publish = publishSection(pub, o)
	r.rep.Delivery = deliverySection(totals, pool, o.Duration, r.nodes)
	return byNode, nil
}

// expectedDeliveries is how many deliveries the accepted seqs (per topic
// index) make among subscribers, subscriber i reading topic i % topics.
func expectedDeliveries(accepted []seqSet, subscribers int) uint64 {
	var n uint64
	for i := range subscribers {
		n += accepted[i%len(accepted)].Len()
	}
	return n
}

// awaitDeliveries waits until the pool has received expected new messages
// of the window, or grace has passed.
func awaitDeliveries(ctx context.Context, pool *subscriberPool, expected uint64, grace time.Duration) error {
	graceEnd := time.Now().Add(grace)
	for pool.unique.Load() < expected && time.Now().Before(graceEnd) {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// publishSection is the report's publish section from what the publishers
// did in the window.
func publishSection(pub *publishResult, o Options) *ReportPublish {
	p := &ReportPublish{
		Accepted: pub.accepted.Load(), Errors: pub.failed.Load(), Requests: pub.requests.Load(),
		PerSecond: float64(pub.accepted.Load()) / o.Duration.Seconds(),
		Latency:   newLatency(&pub.latency),
	}
	if err := pub.FirstError(); err != nil {
		p.FirstError = err.Error()
	}
	if o.Rate > 0 {
		sent := float64(pub.accepted.Load() + pub.failed.Load())
		p.BehindSchedule = sent < 0.95*o.Rate*o.Duration.Seconds()
	}
	return p
}

// deliverySection is the report's delivery section from the subscribers'
// totals and latencies; on a cluster the latency is split by where the
// subscriber was.
func deliverySection(t deliveryTotals, pool *subscriberPool, duration time.Duration, nodes int) *ReportDelivery {
	d := &ReportDelivery{
		DeliveryCounts: t.counts(), Missed: t.Missed, Malformed: t.Malformed,
		Disconnected: t.Disconnected, FirstDisconnect: t.FirstDisconnect,
		PerSecond: float64(t.Delivered) / duration.Seconds(),
		Latency:   newLatency(pool.Latency()),
	}
	if nodes > 1 {
		local, cross := newLatency(pool.LatencyOf(false)), newLatency(pool.LatencyOf(true))
		d.LatencyPublishingNode, d.LatencyCrossNode = &local, &cross
	}
	return d
}

// finish fills in the sections read after the window: the bench's own CPU,
// each server's figures and, on a cluster, each node's.
func (r *run) finish(byNode []deliveryTotals) {
	s := &r.scrapes
	if s.cpuOK {
		v := (s.cpuEnd - s.cpuStart).Seconds()
		r.rep.Client.CPUSeconds = &v
	}
	servers := make([]ReportServer, r.nodes)
	for i := range r.nodes {
		_, subs := r.route.subscribersOn(i, r.opts.Subscribers)
		servers[i] = serverFigures(snapshotOf(s.before, i), snapshotOf(s.withSubs, i), snapshotOf(s.windowStart, i), snapshotOf(s.after, i),
			subs, s.windowEnded.Sub(s.windowBegan))
		if s.errs[i] != nil {
			servers[i].MetricsError = s.errs[i].Error()
		}
	}
	r.rep.Server = servers[0]
	if r.nodes > 1 {
		r.rep.Nodes = nodeSections(servers, byNode, r.bases, r.opts)
	}
}

// nodeSections is the report's per-node section of a cluster.
func nodeSections(servers []ReportServer, byNode []deliveryTotals, bases []string, o Options) []ReportNode {
	nodes := make([]ReportNode, len(servers))
	for i := range servers {
		n := ReportNode{
			Node: i, URL: bases[i], Server: servers[i],
			Publishes: !o.Idle && (o.PublishNode == PublishAll || o.PublishNode == i),
		}
		if byNode != nil {
			t := byNode[i]
			n.Delivery = &ReportNodeDelivery{Subscribers: t.Subscribers, DeliveryCounts: t.counts(), Disconnected: t.Disconnected}
		}
		nodes[i] = n
	}
	return nodes
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
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits for d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
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
