package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestAppLimitsCommand sets an app's limits through the CLI with the admin
// token: the flags given are the app's own limits, the others the server's
// defaults; an app key is refused.
func TestAppLimitsCommand(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "t")
	runWith := func(token string, args ...string) (string, error) {
		getenv := func(k string) string {
			return map[string]string{"HERALD_URL": srv.URL, "HERALD_TOKEN": token}[k]
		}
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, getenv, &out, &errOut)
		return out.String(), err
	}
	out, err := runWith(heraldtest.AdminToken, "app", "limits", app.ID, "--streams", "3", "--publish-rate", "2.5", "--topics", "-1")
	require.NoError(t, err)
	var got client.AppLimits
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, 3, *got.Effective.Streams)
	require.InDelta(t, 2.5, *got.Effective.PublishRate, 1e-9)
	require.Equal(t, 3, *got.Effective.PublishBurst, "a second's worth, rounded up")
	require.Nil(t, got.Effective.Topics, "-1: unlimited")
	require.Nil(t, got.Limits.PublishBurst, "not given: the default")

	_, err = runWith(app.FullKey, "app", "limits", app.ID, "--streams", "9")
	var apiErr *client.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, 401, apiErr.Status)
	_, err = runWith(heraldtest.AdminToken, "app", "limits")
	require.ErrorIs(t, err, errUsage)
}
