//go:build !unix

package loadtest

import (
	"net"
	"time"
)

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE; 0 means the
// limit is unknown.
func raiseFileLimit() (uint64, error) { return 0, nil }

// processCPU is not available on this platform.
func processCPU() (time.Duration, bool) { return 0, false }

// peerClosed cannot tell here: it reports false, and a connection closed
// while idle fails the publish sent on it.
func peerClosed(net.Conn) bool { return false }
