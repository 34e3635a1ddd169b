// Package metrics holds Herald's Prometheus collectors. A Metrics is created
// per server on its own registry, so two servers in one process (as in tests)
// never share counters. No metric carries an app or topic label: the series
// count stays fixed however many topics an install has.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors one server updates.
type Metrics struct {
	registry *prometheus.Registry

	// Connections is the number of open SSE streams.
	Connections prometheus.Gauge
	// Subscribers is the number of (stream, topic) subscriptions.
	Subscribers prometheus.Gauge
	// Published counts messages committed by publish.
	Published prometheus.Counter
	// Delivered counts events written to SSE streams.
	Delivered prometheus.Counter
	// Lagged counts events that slow subscribers lost.
	Lagged prometheus.Counter
	// LagEpisodes counts `lagged` signals sent to subscribers.
	LagEpisodes prometheus.Counter
	// SlowDisconnects counts streams cut off because a write missed its deadline.
	SlowDisconnects prometheus.Counter
	// PublishDuration observes the time from a publish request to its commit.
	PublishDuration prometheus.Histogram
	// Pruned counts history messages removed by retention.
	Pruned prometheus.Counter

	// WebhookAttempts counts webhook delivery attempts that ended (and were
	// not abandoned at shutdown).
	WebhookAttempts prometheus.Counter
	// WebhookDelivered counts deliveries a receiver took (2xx).
	WebhookDelivered prometheus.Counter
	// WebhookFailed counts attempts that failed (retried or dead).
	WebhookFailed prometheus.Counter
	// WebhookDead counts deliveries that became dead letters.
	WebhookDead prometheus.Counter
	// WebhookLeaseLost counts outcomes dropped because the attempt
	// outlived its lease.
	WebhookLeaseLost prometheus.Counter
	// WebhookInflight is the number of attempts running on this node.
	WebhookInflight prometheus.Gauge
	// WebhookAttemptDuration observes how long attempts take.
	WebhookAttemptDuration prometheus.Histogram
	// WebhookPruned counts settled deliveries removed by retention.
	WebhookPruned prometheus.Counter

	// LimitRefusals counts requests refused at a per-app limit, by kind
	// (streams, publish_rate, topics); no app label, so the series count
	// is fixed.
	LimitRefusals *prometheus.CounterVec
}

// New returns collectors registered on a fresh registry, with the Go runtime
// and process collectors beside them.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		registry: r,
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_sse_connections", Help: "Open SSE streams.",
		}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_sse_subscriptions", Help: "Topic subscriptions held by open SSE streams.",
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_messages_published_total", Help: "Messages committed by publish.",
		}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_delivered_total", Help: "Events written to SSE streams (replay included).",
		}),
		Lagged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_lagged_total", Help: "Events lost by slow subscribers (each announced by an `event: lagged`).",
		}),
		LagEpisodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_lag_signals_total", Help: "`event: lagged` frames sent.",
		}),
		SlowDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_slow_consumer_disconnects_total", Help: "SSE streams closed because a write missed its deadline.",
		}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_publish_duration_seconds",
			Help:    "Time from a publish request being read to its message being committed.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		Pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_history_pruned_total", Help: "History messages removed by retention.",
		}),
		WebhookAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_attempts_total", Help: "Webhook delivery attempts made.",
		}),
		WebhookDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_delivered_total", Help: "Webhook deliveries a receiver took (2xx).",
		}),
		WebhookFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_failed_attempts_total", Help: "Webhook attempts that failed (to be retried, or dead).",
		}),
		WebhookDead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_dead_total", Help: "Webhook deliveries that became dead letters.",
		}),
		WebhookLeaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_lease_lost_total", Help: "Webhook outcomes dropped because the attempt outlived its lease.",
		}),
		WebhookInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_webhook_attempts_in_flight", Help: "Webhook attempts running on this node.",
		}),
		WebhookAttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_webhook_attempt_duration_seconds",
			Help:    "Time one webhook attempt took, from connecting to reading the answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}),
		WebhookPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_webhook_deliveries_pruned_total", Help: "Settled webhook deliveries removed by retention.",
		}),
		LimitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_limit_refusals_total", Help: "Requests refused at a per-app limit (429), by limit.",
		}, []string{"limit"}),
	}
	// Every kind shows from the start, at 0, so a rate() over it works
	// before the first refusal.
	for _, kind := range []string{"streams", "publish_rate", "topics", "triggers"} {
		m.LimitRefusals.WithLabelValues(kind)
	}
	r.MustRegister(m.LimitRefusals)
	r.MustRegister(
		m.Connections, m.Subscribers, m.Published, m.Delivered, m.Lagged, m.LagEpisodes,
		m.SlowDisconnects, m.PublishDuration, m.Pruned,
		m.WebhookAttempts, m.WebhookDelivered, m.WebhookFailed, m.WebhookDead, m.WebhookLeaseLost,
		m.WebhookInflight, m.WebhookAttemptDuration, m.WebhookPruned,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Register adds more collectors (for example a backend's own) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}
