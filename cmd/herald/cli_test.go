package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// runCLI runs the program as main would, returning its exit status and
// what it wrote to stdout and stderr.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	err := run(t.Context(), args, getenv, &out, &errOut)
	code = report(err, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpThatWasAskedForExitsZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "-h"}, {"serve", "--help"}, {"app", "create", "-h"}, {"app", "list", "-h"},
		{"topic", "create", "-h"}, {"publish", "-h"}, {"tail", "-h"}, {"token", "-h"},
		{"trigger", "create", "-h"}, {"dead-letters", "redrive", "-h"}, {"bench", "-h"}, {"help"},
		{"key", "create", "-h"}, {"key", "list", "-h"}, {"trigger", "attempts", "-h"}, {"admin-token", "-h"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		require.NotContains(t, stderr, "herald: usage", "%v: no error line for asked-for help", args)
		require.NotContains(t, stderr, "flag: help requested", "%v", args)
		require.Contains(t, strings.ToLower(stdout+stderr), "usage", "%v", args)
	}
}

func TestUsageShowsPositionalArgumentsAndDoubleDashFlags(t *testing.T) {
	t.Parallel()
	for cmd, synopsis := range map[string]string{
		"publish": "herald publish [--idempotency-key K] [flags] APP TOPIC JSON",
		"tail":    "herald tail [flags] APP TOPIC [TOPIC...]",
		"token":   "herald token [--ttl 15m] [flags] APP TOPIC [TOPIC...]",
	} {
		_, _, stderr := runCLI(t, cmd, "-h")
		require.Contains(t, stderr, "usage: "+synopsis, cmd)
		require.Contains(t, stderr, "  --url string", cmd)
		require.NotContains(t, stderr, "  -url", cmd)
	}
	_, _, stderr := runCLI(t, "serve", "-h")
	require.Contains(t, stderr, "  --addr string")
	require.Contains(t, stderr, `(default "127.0.0.1:8080")`)
	require.Contains(t, stderr, "  --buffer-size int")
	require.Contains(t, stderr, "(default 512)")
}

func TestUsageErrorsSayItOnceWithoutAStrayLine(t *testing.T) {
	t.Parallel()
	// A group command without its verb prints its usage and exits 2,
	// without "herald: usage" after it.
	code, _, stderr := runCLI(t, "app")
	require.Equal(t, 2, code)
	require.True(t, strings.HasPrefix(stderr, "usage: herald app create NAME | list | delete APP"), stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "the usage line alone: %s", stderr)
	code, _, stderr = runCLI(t, "topic", "create", "only-app")
	require.Equal(t, 2, code)
	require.True(t, strings.HasPrefix(stderr, "usage: herald topic create APP TOPIC\n"), stderr)
	require.NotContains(t, stderr, "herald: ")
	code, _, stderr = runCLI(t, "nope")
	require.Equal(t, 2, code)
	require.True(t, strings.HasSuffix(stderr, "herald: unknown command \"nope\"\n"), stderr)
	code, _, stderr = runCLI(t, "publish", "--nope", "a", "t", "1")
	require.Equal(t, 2, code, stderr)
}

func TestErrorsArePrefixedOnce(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.Equal(t, 1, report(fmt.Errorf("herald: 404 app_not_found: no such app"), &b))
	require.Equal(t, "herald: 404 app_not_found: no such app\n", b.String())
	b.Reset()
	require.Equal(t, 1, report(errors.New("read admin token: denied"), &b))
	require.Equal(t, "herald: read admin token: denied\n", b.String())
	require.Equal(t, 0, report(fmt.Errorf("parse: %w", flag.ErrHelp), io.Discard))
	require.Equal(t, 0, report(nil, io.Discard))

	// A real client error, end to end: nothing listens on port 1.
	code, _, stderr := runCLI(t, "app", "list", "--url", "http://127.0.0.1:1", "--token", "x")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(stderr, "herald: "), stderr)
	require.NotContains(t, stderr, "herald: herald:")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version", "-version"} {
		code, stdout, _ := runCLI(t, arg)
		require.Equal(t, 0, code)
		require.True(t, strings.HasPrefix(stdout, "herald "), stdout)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/heraldhq/herald", Version: "v0.0.0-20261204184654-a8ca4f2f5633"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "a8ca4f2f5633fe7f5e999097639eab9691f09d18"},
			{Key: "vcs.time", Value: "2026-12-04T18:46:54Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	require.Equal(t, "herald v0.0.0-20261204184654-a8ca4f2f5633 revision a8ca4f2f5633fe7f5e999097639eab9691f09d18 (2026-12-04T18:46:54Z) with uncommitted changes go1.26.8", describeBuild(bi))
	require.Equal(t, "herald (devel) (no VCS revision recorded) go1.26.8", describeBuild(&debug.BuildInfo{GoVersion: "go1.26.8"}))
}

// Two apps may share a name; app list tells them apart by id (and the
// dashboard connects by id, never by name).
func TestAppListTellsApartAppsWithOneName(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	a, err := srv.Admin.CreateApp(t.Context(), "shop")
	require.NoError(t, err)
	b, err := srv.Admin.CreateApp(t.Context(), "shop")
	require.NoError(t, err)
	require.NotEqual(t, a.ID, b.ID)
	code, stdout, stderr := runCLI(t, "app", "list", "--url", srv.URL, "--token", heraldtest.AdminToken)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^ID\s+NAME\s+CREATED$`, lines[0])
	require.ElementsMatch(t, []string{a.ID, b.ID}, []string{strings.Fields(lines[1])[0], strings.Fields(lines[2])[0]})
	require.Equal(t, "shop", strings.Fields(lines[1])[1])
	require.Equal(t, "shop", strings.Fields(lines[2])[1])
}
