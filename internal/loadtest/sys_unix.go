//go:build unix

package loadtest

import (
	"fmt"
	"syscall"
	"time"
)

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// the limit now in force. Go raises its own soft limit at start-up but puts
// the old one back for child processes; calling syscall.Setrlimit ourselves
// keeps the raised limit for the server bench starts, which needs a
// descriptor per subscriber too.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("set RLIMIT_NOFILE: %w", err)
	}
	return lim.Cur, nil
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
