package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/stats"
	"github.com/heraldhq/herald/internal/store"
)

// NodeReports reads what every node of a cluster reported (store.Nodes).
type NodeReports interface {
	NodeReports(ctx context.Context, appID string, since time.Time) ([]store.NodeAppReport, error)
}

// NodeReportMaxAge is how old a node's report may be and still be shown:
// nodes report every stats.Bucket, so a node missing from the answer has
// missed about three reports (it stopped, or cannot reach the database).
const NodeReportMaxAge = 3 * stats.Bucket

type nodeReportJSON struct {
	ID         string    `json:"id"`
	Addr       string    `json:"addr"`
	Self       bool      `json:"self"`
	Ready      bool      `json:"ready"`
	Reason     string    `json:"reason,omitempty"`
	ReportedAt timestamp `json:"reported_at"`
	// Stats is the app's figures on the node; null when it has none.
	Stats json.RawMessage `json:"stats"`
}

type nodeJSON struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

type statsJSON struct {
	// Node is this node's readiness: the figures are this node's too.
	Node          nodeJSON `json:"node"`
	BucketSeconds int      `json:"bucket_seconds"`
	stats.Snapshot
	// Nodes is every node's report in cluster mode, this one's included;
	// absent on a single node.
	Nodes []nodeReportJSON `json:"nodes,omitempty"`
}

// appStats answers the app's figures on this node for the last 15 minutes:
// what the dashboard's health view draws. Only the app's own numbers.
func (a *API) appStats(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Stats == nil {
		a.notFound(w, r)
		return
	}
	resp := statsJSON{Node: nodeJSON{Ready: true}, BucketSeconds: int(stats.Bucket.Seconds()), Snapshot: a.cfg.Stats.Snapshot(r.PathValue("app"))}
	if a.cfg.ReadyFunc != nil {
		if err := a.cfg.ReadyFunc(); err != nil {
			resp.Node = nodeJSON{Ready: false, Reason: err.Error()}
		}
	}
	if a.cfg.Nodes != nil {
		reports, err := a.cfg.Nodes.NodeReports(r.Context(), r.PathValue("app"), time.Now().Add(-NodeReportMaxAge))
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		resp.Nodes = make([]nodeReportJSON, 0, len(reports))
		for _, n := range reports {
			nj := nodeReportJSON{ID: n.NodeID, Addr: n.Addr, Ready: n.Ready, Reason: n.Reason, ReportedAt: timestamp(n.At), Stats: n.App}
			if n.NodeID == a.cfg.NodeID {
				// This node's own figures are fresher than its last report.
				nj.Self, nj.Ready, nj.Reason = true, resp.Node.Ready, resp.Node.Reason
				nj.Stats, _ = json.Marshal(resp.Snapshot) // plain data always encodes
			}
			resp.Nodes = append(resp.Nodes, nj)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	a.writeJSON(w, http.StatusOK, resp)
}
