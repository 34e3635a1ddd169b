package hostile_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every attack's connections and every server the suite starts must be
// gone when it ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
