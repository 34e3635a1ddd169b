package loadtest

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run subscribers, publishers and watchers of child servers:
// every goroutine they start must be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
