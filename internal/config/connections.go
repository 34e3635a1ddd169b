package config

// Headroom kept below the open-file limit for what is not a client
// connection: the SQLite files and their WAL, a Postgres pool, webhook
// attempts (DefaultConcurrency sockets), the cluster listener, logs.
const (
	minHeadroom = 64
	// fallbackMaxConnections is the default where the open-file limit is
	// unknown (not a Unix system).
	fallbackMaxConnections = 10_000
)

// DefaultMaxConnections is --max-connections' default: the process's
// open-file limit less a headroom of a tenth of it (at least 64), so that
// a flood of clients makes the server wait for connections to close rather
// than fail to open files (EMFILE), which would take the store and
// webhooks down with it. Go raises the soft limit to the hard one at
// start, so the figure is the hard limit in practice.
func DefaultMaxConnections() int {
	limit, ok := openFileLimit()
	if !ok {
		return fallbackMaxConnections
	}
	return maxConnectionsFor(limit)
}

// maxConnectionsFor is the default cap under an open-file limit.
func maxConnectionsFor(limit uint64) int {
	const most = 1 << 20 // beyond this the limit is "unlimited" for our purposes
	limit = min(limit, most)
	headroom := max(limit/10, minHeadroom)
	if limit <= 2*headroom {
		return max(int(limit/2), 1) // a tiny limit: share it evenly
	}
	return int(limit - headroom)
}
