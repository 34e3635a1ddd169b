package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/server"
)

func runEnv(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	return report(err, &errOut), out.String(), errOut.String()
}

func TestAdminTokenPrintsAndRotatesTheKeptToken(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.AdminToken = ""
	srv := heraldtest.Start(t, cfg)
	require.True(t, srv.GeneratedAdminToken)
	env := map[string]string{"HERALD_DATA_DIR": cfg.DataDir}

	code, stdout, stderr := runEnv(t, env, "admin-token")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, srv.AdminToken+"\n", stdout, "alone on stdout")

	code, stdout, stderr = runEnv(t, env, "admin-token", "--rotate")
	require.Equal(t, 0, code, stderr)
	rotated := strings.TrimSpace(stdout)
	require.NotEqual(t, srv.AdminToken, rotated)
	require.Contains(t, stderr, "until they restart")
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "admin-token"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, stdout, _ = runEnv(t, env, "admin-token")
	require.Equal(t, rotated+"\n", stdout)

	// The server takes the new one from its next start, and only it.
	srv2 := srv.Restart(t)
	require.Equal(t, rotated, srv2.AdminToken)
	_, err = client.New(srv2.URL, rotated).ListApps(t.Context())
	require.NoError(t, err)
	_, err = client.New(srv2.URL, srv.AdminToken).ListApps(t.Context())
	require.Error(t, err)

	// No token kept yet: it says how to get one.
	code, _, stderr = runEnv(t, map[string]string{"HERALD_DATA_DIR": t.TempDir()}, "admin-token")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "herald serve makes one on its first start")
}

func TestAdminTokenInClusterMode(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	cfg := heraldtest.Config(t)
	cfg.AdminToken = ""
	cfg.DatabaseURL = db
	// Nothing is kept in the data directory in cluster mode, so it is not
	// even created.
	cfg.DataDir = filepath.Join(t.TempDir(), "herald-data")
	srv := heraldtest.Start(t, cfg)
	require.True(t, srv.GeneratedAdminToken)
	require.NoDirExists(t, cfg.DataDir)

	env := map[string]string{"HERALD_DATABASE_URL": db}
	code, stdout, stderr := runEnv(t, env, "admin-token")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, srv.AdminToken+"\n", stdout)
	code, stdout, stderr = runEnv(t, env, "admin-token", "--rotate")
	require.Equal(t, 0, code, stderr)
	rotated := strings.TrimSpace(stdout)
	require.NotEqual(t, srv.AdminToken, rotated)
	srv2 := srv.Restart(t)
	require.Equal(t, rotated, srv2.AdminToken)
	require.NoDirExists(t, cfg.DataDir)
}

// A first start that fails on a port in use creates no admin token that
// nobody saw; the next start generates and shows it.
func TestFailedFirstStartLeavesNoUnseenToken(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"HERALD_DATA_DIR": dir, "HERALD_ADDR": busy.Addr().String()}
	code, stdout, stderr := runEnv(t, env, "serve")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "address already in use")
	require.Empty(t, stdout)
	require.NoFileExists(t, filepath.Join(dir, "admin-token"))

	cfg := heraldtest.Config(t)
	cfg.DataDir, cfg.AdminToken = dir, ""
	srv := heraldtest.Start(t, cfg)
	require.True(t, srv.GeneratedAdminToken, "generated, and so shown, by the start that succeeded")
}

func TestAdminTokenFlagThatDiffersFromTheKeptOneSaysWhichWins(t *testing.T) {
	t.Parallel()
	cfg := heraldtest.Config(t)
	cfg.AdminToken = ""
	first := heraldtest.Start(t, cfg)
	require.NoError(t, first.Stop())

	cfg.AdminToken = heraldtest.AdminToken
	var logs bytes.Buffer
	srv, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, srv.Serve(ctx))
	require.Contains(t, logs.String(), "--admin-token differs from the admin token kept in "+filepath.Join(cfg.DataDir, "admin-token"))
	require.Contains(t, logs.String(), "--admin-token wins")

	// The same token: nothing to say.
	cfg.AdminToken = first.AdminToken
	logs.Reset()
	srv, err = server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.NoError(t, srv.Serve(ctx))
	require.NotContains(t, logs.String(), "differs")
}
