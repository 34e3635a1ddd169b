package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/store"
)

func testNodes(t *testing.T, setup setupFunc) {
	t.Helper()

	t.Run("ReportReplaceAndExpire", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ns, ok := b.st.(store.Nodes)
		require.True(t, ok, "%T does not implement store.Nodes; every store must", b.st)
		at := now()
		require.NoError(t, ns.ReportNode(b.ctx, store.NodeReport{
			NodeID: "b", Addr: "10.0.0.2:8080", Ready: false, Reason: "listener reconnecting", At: at,
			Apps: map[string][]byte{"app1": []byte(`{"n":1}`), "app2": []byte(`{"n":2}`)},
		}, at.Add(-time.Minute)))
		require.NoError(t, ns.ReportNode(b.ctx, store.NodeReport{NodeID: "a", Addr: "10.0.0.1:8080", Ready: true, At: at}, at.Add(-time.Minute)))

		rs, err := ns.NodeReports(b.ctx, "app1", at.Add(-time.Second))
		require.NoError(t, err)
		require.Len(t, rs, 2)
		require.Equal(t, "a", rs[0].NodeID, "by node id")
		require.True(t, rs[0].Ready)
		require.Nil(t, rs[0].App, "node a has no figures of app1")
		require.Equal(t, "b", rs[1].NodeID)
		require.Equal(t, "10.0.0.2:8080", rs[1].Addr)
		require.False(t, rs[1].Ready)
		require.Equal(t, "listener reconnecting", rs[1].Reason)
		require.JSONEq(t, `{"n":1}`, string(rs[1].App))
		requireSameTime(t, at, rs[1].At)

		// A new report replaces the node's apps; older reports expire.
		later := at.Add(time.Minute)
		require.NoError(t, ns.ReportNode(b.ctx, store.NodeReport{
			NodeID: "b", Addr: "10.0.0.2:8080", Ready: true, At: later, Apps: map[string][]byte{"app2": []byte(`{"n":3}`)},
		}, later.Add(-30*time.Second)))
		rs, err = ns.NodeReports(b.ctx, "app1", time.Time{})
		require.NoError(t, err)
		require.Len(t, rs, 1, "node a's report was stale and is gone")
		require.Nil(t, rs[0].App, "app1's figures went with the old report")
		rs, err = ns.NodeReports(b.ctx, "app2", later)
		require.NoError(t, err)
		require.Len(t, rs, 1)
		require.JSONEq(t, `{"n":3}`, string(rs[0].App))
		rs, err = ns.NodeReports(b.ctx, "app2", later.Add(time.Second))
		require.NoError(t, err)
		require.Empty(t, rs, "only reports made at or after since")
	})
}
