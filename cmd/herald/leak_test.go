package main

import (
	"testing"

	"go.uber.org/goleak"
)

// The CLI tests run servers, streams and the bench in-process: every
// goroutine they start must be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
