//go:build !unix

package sqlite_test

import (
	"testing"
	"time"
)

// processCPU is read with getrusage(2), which this platform lacks: the
// benchmarks that report CPU per operation do not run here.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	b.Skip("CPU per operation is read with getrusage(2), which this platform lacks")
	return 0
}
