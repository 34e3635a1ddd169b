package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

type statsBody struct {
	Node struct {
		Ready bool
	}
	BucketSeconds int `json:"bucket_seconds"`
	Connections   int64
	Points        []struct {
		Published, Delivered, Failed, Connections int64
	}
	SlowDisconnects []struct{ At time.Time } `json:"slow_disconnects"`
}

func getStats(t *testing.T, srv *heraldtest.Server, app, key string) statsBody {
	t.Helper()
	resp := send(t, http.MethodGet, srv.URL+"/v1/apps/"+app+"/stats", key, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var s statsBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

func sum(s statsBody) (published, delivered int64) {
	for _, p := range s.Points {
		published += p.Published
		delivered += p.Delivered
	}
	return published, delivered
}

// TestAppStatsAreTheAppsOwn: the stats endpoint counts an app's publishes
// (single and batched, a replayed one not again), webhook deliveries and
// live streams, and nothing of another app's.
func TestAppStatsAreTheAppsOwn(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	other := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	_, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	openStream(t, srv.URL+"/v1/apps/"+app.ID+"/topics/orders/events", app.SubscribeKey, "")
	waitSubscribers(t, app, "orders", 1)
	for range 2 {
		_, err := app.Full.Publish(t.Context(), app.ID, "orders", []byte(`{}`))
		require.NoError(t, err)
	}
	batch := []client.BatchMessage{
		{Topic: "orders", Message: []byte(`1`), IdempotencyKey: "k1"},
		{Topic: "orders", Message: []byte(`2`)},
	}
	for range 2 { // the second batch replays k1 and stores one message
		_, err = app.Full.PublishBatch(t.Context(), app.ID, batch)
		require.NoError(t, err)
	}
	var s statsBody
	require.Eventually(t, func() bool {
		s = getStats(t, srv, app.ID, app.FullKey)
		_, delivered := sum(s)
		return delivered == 5
	}, 15*time.Second, 10*time.Millisecond)
	published, _ := sum(s)
	require.Equal(t, int64(5), published)
	require.True(t, s.Node.Ready)
	require.Equal(t, 10, s.BucketSeconds)
	require.Len(t, s.Points, 90)
	require.Equal(t, int64(1), s.Connections)
	require.Equal(t, int64(1), s.Points[len(s.Points)-1].Connections)

	o := getStats(t, srv, other.ID, heraldtest.AdminToken)
	published, delivered := sum(o)
	require.Zero(t, published+delivered+o.Connections, "another app's numbers are its own")
	requireErrorBody(t, send(t, http.MethodGet, srv.URL+"/v1/apps/"+app.ID+"/stats", other.FullKey, ""), http.StatusForbidden, "forbidden")
}

// TestClusterStatsShowEveryNode: in cluster mode each node reports its
// figures to the database, so any node's stats show every node, with the
// app's figures on each.
func TestClusterStatsShowEveryNode(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, "")
	app := nodes[0].NewApp(t, "orders")
	for range 3 {
		_, err := client.New(nodes[1].URL, app.FullKey).Publish(t.Context(), app.ID, "orders", []byte(`{}`))
		require.NoError(t, err)
	}
	type nodeJSON struct {
		Addr  string
		Self  bool
		Ready bool
		Stats *statsBody
	}
	var got []nodeJSON
	require.Eventually(t, func() bool {
		resp := send(t, http.MethodGet, nodes[0].URL+"/v1/apps/"+app.ID+"/stats", app.FullKey, "")
		var body struct{ Nodes []nodeJSON }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		got = body.Nodes
		for _, n := range got {
			if n.Addr == nodes[1].Addr() && n.Stats != nil {
				published, _ := sum(*n.Stats)
				return len(got) == 2 && published == 3
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "node 1's figures, seen from node 0")
	for _, n := range got {
		require.True(t, n.Ready)
		require.Equal(t, n.Addr == nodes[0].Addr(), n.Self)
	}
}
