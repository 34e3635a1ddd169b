//go:build !linux && !windows

package sse

import "syscall"

// sendsDirect: the fan-out workers write to this platform's sockets
// themselves (newRawConn).
const sendsDirect = true

// sendNow writes p to the non-blocking socket fd with one write(2); the
// Linux version says why it is a function of its own.
func sendNow(fd uintptr, p []byte) (int, error) {
	return syscall.Write(int(fd), p)
}
