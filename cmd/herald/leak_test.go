package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// execMainEnv makes this test binary behave as the herald binary. Bench
// starts its servers with os.Executable(), which inside `go test` is the
// test binary: TestMain sets the variable before the tests run, the
// children inherit it, and in them TestMain runs main instead of the tests.
const execMainEnv = "HERALD_TEST_EXEC_MAIN"

// The CLI tests run servers, streams and the bench in-process: every
// goroutine they start must be gone when they end.
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	if err := os.Setenv(execMainEnv, "1"); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m)
}
