package httpapi

import (
	"net/http"

	"github.com/heraldhq/herald/internal/stats"
)

type nodeJSON struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

type statsJSON struct {
	// Node is this node's readiness: the figures are this node's too.
	Node          nodeJSON `json:"node"`
	BucketSeconds int      `json:"bucket_seconds"`
	stats.Snapshot
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
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}
