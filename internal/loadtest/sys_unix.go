//go:build unix

package loadtest

import (
	"errors"
	"fmt"
	"net"
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
	return uint64(lim.Cur), nil // int64 on FreeBSD
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// peerClosed reports, without waiting, whether the peer of conn (a TCP
// connection) has closed it or sent something: a peek at the socket, which
// Go keeps non-blocking. A read with a deadline in the past cannot tell: Go
// refuses it before asking the socket.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var (
		buf    [1]byte
		closed bool
	)
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
		// Data, the end (0 bytes), or an error other than "nothing yet".
		closed = n > 0 || (err == nil && n == 0) ||
			(err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK))
		return true // done: never wait for the socket
	})
	return closed || err != nil
}
