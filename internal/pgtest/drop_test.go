package pgtest

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDropGivesUp checks that a database that cannot be dropped (here the
// server is unreachable) is reported after retries, not passed over: the
// retries that ride out a busy machine must not hide a real failure.
func TestDropGivesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	t.Setenv("HERALD_TEST_POSTGRES_URL", "postgres://postgres@"+addr+"/postgres?sslmode=disable")

	err = dropDatabase("herald_t_never_made", 2*time.Second)
	require.ErrorContains(t, err, "drop database herald_t_never_made: gave up after")
	require.ErrorContains(t, err, "connect to")
}
