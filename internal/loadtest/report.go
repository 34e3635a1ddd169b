package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Report is the outcome of one run: --json prints it as it is, and
// WriteTable prints it for people. Sections that do not apply (publish
// and delivery in --idle mode; figures the server does not export; nodes on
// a single server) are nil.
type Report struct {
	Config   ReportConfig    `json:"config"`
	Connect  ReportConnect   `json:"connect"`
	Publish  *ReportPublish  `json:"publish,omitempty"`
	Delivery *ReportDelivery `json:"delivery,omitempty"`
	// Server is node 0's figures: the only server's, or on a cluster the
	// first node's, which Nodes repeats.
	Server ReportServer `json:"server"`
	Nodes  []ReportNode `json:"nodes,omitempty"`
	Client ReportClient `json:"client"`
}

// ReportConfig echoes what was run.
type ReportConfig struct {
	URL       string `json:"url"` // node 0's
	OwnServer bool   `json:"own_server"`
	// Store is the store of the servers bench started (sqlite or
	// postgres); empty for a remote server.
	Store string `json:"store,omitempty"`
	// Broadcast is the cluster transport of the servers bench started on
	// Postgres: notify (LISTEN/NOTIFY) or nats.
	Broadcast string `json:"broadcast,omitempty"`
	Nodes     int    `json:"nodes"`
	// URLs lists every node's URL on a cluster.
	URLs []string `json:"urls,omitempty"`
	// PublishNode is the node messages were published through, or "all".
	PublishNode string  `json:"publish_node,omitempty"`
	Subscribers int     `json:"subscribers"`
	Topics      int     `json:"topics"`
	Rate        float64 `json:"rate"` // 0: as fast as possible
	Publishers  int     `json:"publishers"`
	Size        int     `json:"size"`
	Batch       int     `json:"batch"` // messages per publish request (1: single publishes)
	DurationS   float64 `json:"duration_seconds"`
	WarmupS     float64 `json:"warmup_seconds"`
	Idle        bool    `json:"idle"`
}

// ReportConnect is how long the subscribers took to connect, until the
// server counted every one of them.
type ReportConnect struct {
	Subscribers int     `json:"subscribers"`
	Seconds     float64 `json:"seconds"`
}

// LatencyMs is a latency distribution in milliseconds.
type LatencyMs struct {
	Samples uint64  `json:"samples"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
}

func newLatency(h *latencyHistogram) LatencyMs {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return LatencyMs{
		Samples: h.Count(), Mean: ms(h.Mean()),
		P50: ms(h.Quantile(.50)), P90: ms(h.Quantile(.90)), P99: ms(h.Quantile(.99)),
		P999: ms(h.Quantile(.999)), Max: ms(h.Max()),
	}
}

// ReportPublish covers the publishes sent inside the measured window;
// latency is from sending the request to reading its 202.
type ReportPublish struct {
	// BehindSchedule is set when the publishers, each waiting for a 202
	// before its next request, sent less than 95% of what --rate asked.
	BehindSchedule bool      `json:"behind_schedule,omitempty"`
	Accepted       uint64    `json:"accepted"` // messages, as Errors
	Requests       uint64    `json:"requests"` // that carried the accepted messages (as many, unless --batch)
	Errors         uint64    `json:"errors"`
	FirstError     string    `json:"first_error,omitempty"`
	PerSecond      float64   `json:"per_second"`
	Latency        LatencyMs `json:"latency_ms"`
}

// ReportDelivery covers the messages accepted inside the measured
// window: Expected is each one once per subscriber of its topic, Delivered
// how many of those arrived (each counted once), Lost the difference.
// Latency is from the publisher taking the send time to the subscriber
// parsing the frame, both on the bench's clock.
type ReportDelivery struct {
	DeliveryCounts
	Missed          uint64    `json:"missed"`
	Malformed       uint64    `json:"malformed"`
	Disconnected    uint64    `json:"disconnected"`
	FirstDisconnect string    `json:"first_disconnect,omitempty"`
	PerSecond       float64   `json:"per_second"`
	Latency         LatencyMs `json:"latency_ms"`
	// On a cluster, Latency split: messages received on the node they were
	// published through, and on another node (through Postgres).
	LatencyPublishingNode *LatencyMs `json:"latency_publishing_node_ms,omitempty"`
	LatencyCrossNode      *LatencyMs `json:"latency_cross_node_ms,omitempty"`
}

// DeliveryCounts are the counts the delivery section and each node's share.
// Embedded, their fields stand in the JSON beside the section's own.
type DeliveryCounts struct {
	Expected     uint64 `json:"expected"`
	Delivered    uint64 `json:"delivered"`
	Lost         uint64 `json:"lost"`
	Duplicates   uint64 `json:"duplicates"`
	OutOfOrder   uint64 `json:"out_of_order"`
	LaggedEvents uint64 `json:"lagged_events"`
}

// ReportNode is one node of a cluster: its subscribers' delivery and
// its server figures.
type ReportNode struct {
	Node      int                 `json:"node"`
	URL       string              `json:"url"`
	Publishes bool                `json:"publishes"` // messages were published through it
	Delivery  *ReportNodeDelivery `json:"delivery,omitempty"`
	Server    ReportServer        `json:"server"`
}

// ReportNodeDelivery is ReportDelivery for the subscribers of one
// node.
type ReportNodeDelivery struct {
	Subscribers int `json:"subscribers"`
	DeliveryCounts
	Disconnected uint64 `json:"disconnected"`
}

// ReportServer is read from the server's /metrics, so it works for a
// remote server too. CPU and counters cover the measured window (from its
// start to the end of the grace period); memory is sampled before the
// subscribers connect, once they all have, and at the end. Per-connection
// figures divide the growth by the subscriber count. The Postgres listener's
// figures (PG…) exist on the Postgres store only: reconnects and queue usage
// as they stand at the end, notifications and history reads over the window.
type ReportServer struct {
	WindowS    float64  `json:"window_seconds"`
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	CPUCores   *float64 `json:"cpu_cores,omitempty"` // CPU seconds per second of the window
	// CPUPerDeliveryMicros is the server's CPU over the window divided by the
	// events it wrote to SSE streams in it, in microseconds: the fan-out
	// cost the headline of the table gives.
	CPUPerDeliveryMicros *float64     `json:"cpu_per_delivery_us,omitempty"`
	RSSBefore            *float64     `json:"rss_before_bytes,omitempty"`
	RSSWithSubscribers   *float64     `json:"rss_with_subscribers_bytes,omitempty"`
	RSSAfter             *float64     `json:"rss_after_bytes,omitempty"`
	RSSPerConnection     *float64     `json:"rss_per_connection_bytes,omitempty"`
	HeapBefore           *float64     `json:"heap_inuse_before_bytes,omitempty"`
	HeapWithSubscribers  *float64     `json:"heap_inuse_with_subscribers_bytes,omitempty"`
	HeapPerConnection    *float64     `json:"heap_inuse_per_connection_bytes,omitempty"`
	StackWithSubscribers *float64     `json:"stack_inuse_with_subscribers_bytes,omitempty"`
	StackPerConnection   *float64     `json:"stack_inuse_per_connection_bytes,omitempty"`
	Goroutines           *float64     `json:"goroutines_with_subscribers,omitempty"`
	EventsDelivered      *float64     `json:"events_delivered,omitempty"`
	EventsLagged         *float64     `json:"events_lagged,omitempty"`
	SlowDisconnects      *float64     `json:"slow_consumer_disconnects,omitempty"`
	MessagesPublished    *float64     `json:"messages_published,omitempty"`
	CPUPerPublishMicros  *float64     `json:"cpu_per_publish_us,omitempty"` // CPUSeconds / MessagesPublished: deliveries included
	PublishCommitP50     *BucketBound `json:"publish_commit_p50,omitempty"`
	PublishCommitP99     *BucketBound `json:"publish_commit_p99,omitempty"`

	PGListenerReconnects    *float64 `json:"pg_listener_reconnects_total,omitempty"`
	PGQueueUsage            *float64 `json:"pg_notification_queue_usage,omitempty"`
	PGNotificationsReceived *float64 `json:"pg_notifications_received,omitempty"`
	PGHistoryReads          *float64 `json:"pg_history_reads,omitempty"`

	MetricsError string `json:"metrics_error,omitempty"`
}

// ReportClient is the bench process's own cost, which shares the
// machine with a server it started.
type ReportClient struct {
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"` // over the same window as the server's
	FileLimit  uint64   `json:"file_limit,omitempty"`
}

// WriteJSON writes r as indented JSON, the form `herald bench --json` prints.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
