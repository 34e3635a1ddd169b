package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/client"
)

// subscriberReadBuffer is the read buffer of one subscriber's connection.
// Frames are a few hundred bytes; the FrameReader above it has its own.
const subscriberReadBuffer = 2 << 10

// latencyShards is how many histograms the subscribers' latencies are
// spread over, so that ten thousand goroutines do not all add to one set of
// atomic counters.
const latencyShards = 64

// subscriberPool holds the bench's SSE connections: one goroutine each,
// reading frames and keeping its own deliveryTracker.
//
// Each connection is a plain TCP (or TLS) connection with a hand-written GET
// and http.ReadResponse, rather than an http.Client: the Transport runs two
// goroutines and two 4 KiB buffers per connection besides the reader's, which
// at ten thousand subscribers costs the bench more than the server it
// measures.
type subscriberPool struct {
	bases    []*url.URL // one per node; subscriber i connects to bases[route.subscriberNode(i)]
	route    nodeRoute
	app, key string
	topics   []string
	window   *measureWindow

	trackers []deliveryTracker // trackers[i] is owned by subscriber i's goroutine until wg.Wait
	errs     []error           // errs[i]: why subscriber i's stream ended early; same ownership
	// hists[0] holds the latencies of messages received on the node they
	// were published through, hists[1] those received on another node.
	hists [2][latencyShards]latencyHistogram
	// unique counts new seqs received inside the window, by every
	// subscriber: the grace period ends early once it reaches the expected.
	unique atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSubscribers connects n subscribers, subscriber i to topics[i%len]
// on the node route gives it (bases has one URL per node), at most
// concurrency at a time, and returns once all of them have their stream
// open, or with the first error (after closing those that opened).
func startSubscribers(ctx context.Context, bases []*url.URL, route nodeRoute, app, key string, topics []string, n, concurrency int, timeout time.Duration, window *measureWindow) (*subscriberPool, error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &subscriberPool{
		bases: bases, route: route, app: app, key: key, topics: topics, window: window,
		trackers: make([]deliveryTracker, n), errs: make([]error, n), cancel: cancel,
	}
	connectCtx, stopConnect := context.WithTimeout(ctx, timeout)
	defer stopConnect()
	sem := make(chan struct{}, max(concurrency, 1))
	connected := make(chan error, n)
	for i := range n {
		p.wg.Go(func() { p.run(runCtx, connectCtx, i, sem, connected) })
	}
	var errs []error
	for range n {
		if err := <-connected; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		p.Close()
		return nil, fmt.Errorf("%d of %d subscribers failed to connect; the first: %w", len(errs), n, errs[0])
	}
	return p, nil
}

// Close ends every stream and waits for their goroutines. It is safe to
// call more than once; the trackers may be read once it has returned.
func (p *subscriberPool) Close() {
	p.cancel()
	p.wg.Wait()
}

// run is subscriber i: connect (reporting the outcome on connected), then
// read until ctx ends or the stream does.
func (p *subscriberPool) run(ctx, connectCtx context.Context, i int, sem chan struct{}, connected chan<- error) {
	ti := i % len(p.topics)
	topic := p.topics[ti]
	var body io.ReadCloser
	var err error
	select {
	case sem <- struct{}{}:
		body, err = p.connect(connectCtx, p.bases[p.route.subscriberNode(i)], topic)
		<-sem
	case <-connectCtx.Done():
		err = connectCtx.Err()
	}
	connected <- err
	if err != nil {
		return
	}
	// Closing the connection is how a blocked read is ended; its error says
	// nothing about the run.
	stop := context.AfterFunc(ctx, func() { _ = body.Close() })
	defer func() {
		if stop() {
			_ = body.Close()
		}
	}()
	frames := client.NewFrameReader(body)
	for {
		f, err := frames.Next()
		if err != nil {
			if ctx.Err() == nil {
				p.errs[i] = fmt.Errorf("stream of %s ended: %w", topic, err)
			}
			return
		}
		if f.Type == client.EventTopicDeleted {
			p.errs[i] = fmt.Errorf("topic %s was deleted", topic)
			return
		}
		p.observe(i, f)
	}
}

// observe is subscriber i's account of one frame: a message goes to its
// tracker and, when it counts, its latency to the histogram of its kind
// (same node or across); a lagged notice adds its missed count.
func (p *subscriberPool) observe(i int, f client.Frame) {
	tr := &p.trackers[i]
	switch f.Type {
	case "", client.EventMessage:
		now := time.Now().UnixNano()
		seq, sent, err := parseDelivery(f.Data)
		if err != nil {
			tr.malformed++
			return
		}
		id, _ := strconv.ParseUint(f.ID, 10, 64)
		isNew := tr.Observe(seq, id)
		if !p.window.Counts(jobNumber(i%len(p.topics), seq, len(p.topics)), sent) {
			return
		}
		kind := 0
		if p.route.crossNode(i, seq) {
			kind = 1
		}
		p.hists[kind][i%latencyShards].Record(time.Duration(now - sent))
		if isNew {
			p.unique.Add(1)
		}
	case client.EventLagged:
		tr.lagged++
		if missed, err := parseLagged(f.Data); err == nil {
			tr.missed += missed
		} else {
			tr.malformed++
		}
	}
}

// connect opens a stream of topic on the server at base and returns its
// body once the server has answered 200: by then the server has subscribed
// it, so nothing published afterwards can be missed.
func (p *subscriberPool) connect(ctx context.Context, base *url.URL, topic string) (io.ReadCloser, error) {
	conn, err := dialNode(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connect subscriber: %w", err)
	}
	opened := false
	defer func() {
		if !opened {
			_ = conn.Close() // the error that made us give up is the one to report
		}
	}()
	// dialNode left ctx's deadline on conn: it covers the request and the
	// response headers only.
	u := *base
	u.Path = strings.TrimRight(base.Path, "/") + "/v1/apps/" + url.PathEscape(p.app) + "/topics/" + url.PathEscape(topic) + "/events"
	u.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("connect subscriber: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+p.key)
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("connect subscriber: send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, subscriberReadBuffer), req)
	if err != nil {
		return nil, fmt.Errorf("connect subscriber: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, fmt.Errorf("connect subscriber: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("connect subscriber: %w", err)
	}
	opened = true
	return connBody{resp.Body, conn}, nil
}

// dialNode opens a connection to the server at base, over TLS for https,
// under ctx's deadline, which it leaves on the connection.
func dialNode(ctx context.Context, base *url.URL) (net.Conn, error) {
	host := base.Host
	if base.Port() == "" {
		port := "80"
		if base.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(base.Hostname(), port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	if base.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: base.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	return conn, nil
}

// connBody is a response body whose Close closes its connection: the
// response's own Close would try to drain an endless stream.
type connBody struct {
	io.Reader
	conn net.Conn
}

func (b connBody) Close() error { return b.conn.Close() }

// parseLagged reads the missed count of an `event: lagged` frame,
// {"missed":N,"topic":"…"}.
func parseLagged(data string) (uint64, error) {
	const key = `"missed":`
	i := strings.Index(data, key)
	if i < 0 {
		return 0, errors.New("lagged event without missed")
	}
	rest := data[i+len(key):]
	j := strings.IndexAny(rest, ",}")
	if j < 0 {
		return 0, errors.New("lagged event: unterminated missed")
	}
	n, err := strconv.ParseUint(strings.TrimSpace(rest[:j]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lagged event: %w", err)
	}
	return n, nil
}

// Totals sums the trackers against the seqs accepted in the window (per
// topic index), over all subscribers and per node. It must be called after
// Close.
func (p *subscriberPool) Totals(accepted []seqSet) (all deliveryTotals, byNode []deliveryTotals) {
	byNode = make([]deliveryTotals, len(p.bases))
	for i := range p.trackers {
		tr := &p.trackers[i]
		acc := &accepted[i%len(p.topics)]
		t := deliveryTotals{
			Subscribers: 1,
			Expected:    acc.Len(), Delivered: tr.seen.IntersectLen(acc),
			Duplicates: tr.duplicates, OutOfOrder: tr.outOfOrder,
			LaggedEvents: tr.lagged, Missed: tr.missed, Malformed: tr.malformed,
		}
		if p.errs[i] != nil {
			t.Disconnected = 1
			t.FirstDisconnect = p.errs[i].Error()
		}
		all.add(t)
		byNode[p.route.subscriberNode(i)].add(t)
	}
	return all, byNode
}

// Latency merges every latency shard, on the publishing node and across.
func (p *subscriberPool) Latency() *latencyHistogram {
	var h latencyHistogram
	for c := range p.hists {
		for i := range p.hists[c] {
			h.Merge(&p.hists[c][i])
		}
	}
	return &h
}

// LatencyOf merges the latency shards of the messages received on another
// node than the one they were published through (cross set), or of those
// received on that node (cross unset).
func (p *subscriberPool) LatencyOf(cross bool) *latencyHistogram {
	c := 0
	if cross {
		c = 1
	}
	var h latencyHistogram
	for i := range p.hists[c] {
		h.Merge(&p.hists[c][i])
	}
	return &h
}
