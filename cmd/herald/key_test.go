package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestKeyCommands rotates a key through the CLI against a real server:
// create, list, use, revoke, refused.
func TestKeyCommands(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	token := app.FullKey
	getenv := func(k string) string {
		return map[string]string{"HERALD_URL": srv.URL, "HERALD_TOKEN": token}[k]
	}
	runCmd := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, getenv, &out, &errOut)
		return out.String() + errOut.String(), err
	}

	out, err := runCmd("key", "create", app.ID, "publish")
	require.NoError(t, err, out)
	var k struct{ ID, Key string }
	require.NoError(t, json.Unmarshal([]byte(out), &k))
	require.True(t, strings.HasPrefix(k.Key, "hk_"+k.ID+"_"), "the key is shown at creation")

	out, err = runCmd("key", "list", app.ID)
	require.NoError(t, err, out)
	require.Contains(t, out, k.ID)
	require.Contains(t, out, "publish")
	require.NotContains(t, out, k.Key)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 4, "a header and three keys")

	token = k.Key
	out, err = runCmd("publish", app.ID, "orders", `{"n":1}`)
	require.NoError(t, err, out)

	token = app.FullKey
	out, err = runCmd("key", "revoke", app.ID, k.ID)
	require.NoError(t, err, out)
	require.Contains(t, out, "revoked key "+k.ID)
	out, err = runCmd("key", "revoke", app.ID, k.ID)
	require.Error(t, err, out)
	require.Contains(t, err.Error(), "key_not_found")

	token = k.Key
	_, err = runCmd("publish", app.ID, "orders", `{"n":2}`)
	require.Error(t, err, "a revoked key is refused")

	token = app.FullKey
	_, err = runCmd("key", "create", app.ID)
	require.Error(t, err, "scopes are required")
	_, err = runCmd("key", "create", app.ID, "root")
	require.Error(t, err)
}
