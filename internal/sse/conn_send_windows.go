package sse

import "syscall"

// sendsDirect is false on Windows: its sockets are made for overlapped
// I/O, and a write that returns at once when the buffer is full is not
// what the runtime gives. Every stream there writes from its own
// goroutine (newRawConn returns no directWriter).
const sendsDirect = false

// sendNow is never called on Windows (sendsDirect).
func sendNow(uintptr, []byte) (int, error) { return 0, syscall.EWINDOWS }
