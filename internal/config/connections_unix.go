//go:build unix

package config

import "syscall"

// openFileLimit is the soft limit on open files (RLIMIT_NOFILE).
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true // int64 on FreeBSD
}
