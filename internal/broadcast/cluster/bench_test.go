package cluster_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/broadcast"
	"github.com/heraldhq/herald/internal/broadcast/cluster"
	"github.com/heraldhq/herald/internal/broadcast/cluster/clustertest"
	"github.com/heraldhq/herald/internal/broadcast/natsbus"
	"github.com/heraldhq/herald/internal/broadcast/pgnotify"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// The Postgres store reads the periodic check's heads in one statement.
var _ cluster.HeadsReader = (*postgres.Store)(nil)

// BenchmarkClusterPublish measures what each transport costs the publish
// path: 8 publishers, half on each of two nodes, commit 128-byte messages
// through their node's store and hand them to its broadcaster, as the
// pubsub service does, and each node follows every topic. plain is the
// store with no broadcaster, the ceiling; notify adds pg_notify to each
// publish transaction (two nodes' notifying commits queue for Postgres's
// one NOTIFY lock); nats queues a notice after each commit. publishes/s is
// b.N over the elapsed time.
//
//	go test -run x -bench ClusterPublish -count 3 ./internal/broadcast/cluster/
func BenchmarkClusterPublish(b *testing.B) {
	for _, mode := range []string{"plain", "notify", "nats"} {
		for _, topics := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/topics=%d", mode, topics), func(b *testing.B) {
				benchmarkClusterPublish(b, mode, topics)
			})
		}
	}
}

// benchNode opens a store and, unless mode is plain, a broadcaster over
// mode's transport.
func benchNode(b *testing.B, db, mode, prefix string) (*postgres.Store, *cluster.Broadcaster) {
	b.Helper()
	var (
		opts     postgres.Options
		notifier *pgnotify.Notifier
	)
	if mode == "notify" {
		var err error
		notifier, err = pgnotify.NewNotifier("", 0)
		require.NoError(b, err)
		opts.BeforeCommit = notifier.NotifyTx
	}
	st, err := postgres.Open(b.Context(), db, opts)
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	var tr cluster.Transport
	switch mode {
	case "plain":
		return st, nil
	case "notify":
		tr, err = pgnotify.New(pgnotify.Config{DatabaseURL: db, Pool: st.Pool(), Notifier: notifier})
	case "nats":
		tr, err = natsbus.New(natsbus.Config{URL: natstest.URL(b), Prefix: prefix})
	}
	require.NoError(b, err)
	bc, err := cluster.Open(b.Context(), cluster.Config{Transport: tr, History: st, CheckInterval: time.Second})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, bc.Close()) })
	return st, bc
}

func benchmarkClusterPublish(b *testing.B, mode string, topics int) {
	b.Helper()
	ctx := context.Background()
	db := pgtest.NewDatabase(b)
	prefix := natstest.Prefix()
	type node struct {
		st *postgres.Store
		bc *cluster.Broadcaster
	}
	var nodes [2]node
	for i := range nodes {
		nodes[i].st, nodes[i].bc = benchNode(b, db, mode, prefix)
	}
	for i := range topics {
		clustertest.EnsureTopic(b, nodes[0].st, "app", fmt.Sprintf("bench-%d", i))
		for _, n := range nodes {
			if n.bc != nil {
				_, err := n.bc.Subscribe(b.Context(), "app", fmt.Sprintf("bench-%d", i), broadcast.WakeChan(make(chan struct{}, 1)))
				require.NoError(b, err)
			}
		}
	}
	body := []byte(`{"order":42,"customer":"c-1234567","total":12.5,"currency":"EUR","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxx"}`)
	b.SetParallelism((8 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1)
		n := nodes[i%2]
		req := store.PublishRequest{AppID: "app", Topic: fmt.Sprintf("bench-%d", i%int64(topics)), Body: body}
		if n.bc != nil {
			req.CommittedFunc = func(m store.Message) { n.bc.Publish(ctx, clustertest.EventOf(m)) }
		}
		for pb.Next() {
			if _, err := n.st.Publish(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
	// History reads are the sequencer's cost: gaps its notices did not
	// fill in time, and the periodic checks.
	reads := 0.0
	for _, n := range nodes {
		if n.bc != nil {
			reads += testutil.ToFloat64(n.bc.Collectors()[0])
		}
	}
	b.ReportMetric(reads/float64(b.N), "history-reads/publish")
}
