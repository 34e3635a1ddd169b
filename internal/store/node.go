package store

import (
	"context"
	"time"
)

// This file is the contract of node reports: in a cluster each node writes,
// every few seconds, its readiness and each app's recent figures, so that
// any node can show an app's figures on every node (the dashboard's health
// view) without a cluster transport of its own.

// NodeReport is what one node says about itself.
type NodeReport struct {
	// NodeID is unique per running node (a new one per start).
	NodeID string
	// Addr is where the node listens, for people to tell nodes apart.
	Addr   string
	Ready  bool
	Reason string
	// At is when the node made the report (by its clock).
	At time.Time
	// Apps holds, per app id, the app's figures on the node, opaque to the
	// store (JSON the node made).
	Apps map[string][]byte
}

// NodeAppReport is one node's report as one app sees it.
type NodeAppReport struct {
	NodeID, Addr string
	Ready        bool
	Reason       string
	At           time.Time
	// App is the app's figures on the node; nil when it had none.
	App []byte
}

// Nodes keeps node reports. Implementations are safe for concurrent use;
// after Close every method returns ErrClosed. Both stores implement it.
type Nodes interface {
	// ReportNode replaces the node's earlier report, apps included, and
	// deletes the reports older than staleBefore, of any node.
	ReportNode(ctx context.Context, r NodeReport, staleBefore time.Time) error
	// NodeReports returns every node's report made at or after since,
	// ordered by node id, each with appID's figures (nil when none).
	NodeReports(ctx context.Context, appID string, since time.Time) ([]NodeAppReport, error)
}
