//go:build linux

package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestFullDiskIsUnavailableAndNotReadyUntilSpaceReturns runs a server on a
// small tmpfs that fills up: publishes then get 503 unavailable with
// Retry-After (not 500), /readyz turns 503, and once space is freed /readyz
// is 200 again, publishes succeed, and every message accepted before is
// still there. Mounting needs root; without it the test is skipped, as
// there is no other way to get a real full disk.
func TestFullDiskIsUnavailableAndNotReadyUntilSpaceReturns(t *testing.T) {
	t.Parallel()
	// A batch publish fills the disk through its own store method, which
	// readiness must watch as it watches single publishes.
	publishers := map[string]func(t *testing.T, app heraldtest.App, body []byte) (string, error){
		"single": func(t *testing.T, app heraldtest.App, body []byte) (string, error) {
			m, err := app.Full.Publish(t.Context(), app.ID, "t", body)
			return m.ID, err
		},
		"batch": func(t *testing.T, app heraldtest.App, body []byte) (string, error) {
			rs, err := app.Full.PublishBatch(t.Context(), app.ID, []client.BatchMessage{{Topic: "t", Message: body}})
			if err != nil {
				return "", err
			}
			return rs[0].ID, nil
		},
	}
	for name, publish := range publishers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fillDiskAndRecover(t, publish)
		})
	}
}

func fillDiskAndRecover(t *testing.T, publish func(t *testing.T, app heraldtest.App, body []byte) (string, error)) {
	dir := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })

	cfg := heraldtest.Config(t)
	cfg.DataDir = dir
	srv := heraldtest.Start(t, cfg)
	app := srv.NewApp(t, "t")

	// Leave about 1 MiB free, then publish 32 KiB messages until refused.
	filler := filepath.Join(dir, "filler")
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	free := int64(st.Bavail) * st.Bsize
	require.NoError(t, os.WriteFile(filler, make([]byte, max(free-(1<<20), 0)), 0o600))

	body := fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", 32<<10))
	var accepted []string
	var refused *client.Error
	for range 10_000 {
		id, err := publish(t, app, body)
		if err != nil {
			require.True(t, errors.As(err, &refused), "%v", err)
			break
		}
		accepted = append(accepted, id)
	}
	require.NotNil(t, refused, "the disk never filled")
	require.Equal(t, http.StatusServiceUnavailable, refused.Status, "%v", refused)
	require.Equal(t, "unavailable", refused.Code)
	require.Contains(t, refused.Message, "storage is full")
	requireStatus(t, srv.URL+"/readyz", http.StatusServiceUnavailable)

	require.NoError(t, os.Remove(filler))
	deadline := time.Now().Add(time.Minute)
	for statusOf(t, srv.URL+"/readyz") != http.StatusOK {
		require.True(t, time.Now().Before(deadline), "/readyz stayed 503 after space was freed")
	}
	_, err := publish(t, app, body)
	require.NoError(t, err)
	msgs, err := app.Full.History(t.Context(), app.ID, "t", "", 1000)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(msgs), len(accepted)+1)
	for i, id := range accepted {
		require.Equal(t, id, msgs[i].ID, "an accepted message was lost")
	}
}

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a probe in a test
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func requireStatus(t *testing.T, url string, want int) {
	t.Helper()
	require.Equal(t, want, statusOf(t, url), url)
}
