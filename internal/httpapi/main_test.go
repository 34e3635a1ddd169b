package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run real servers and streams: every goroutine they start must
// be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
