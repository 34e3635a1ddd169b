package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// readmeBlock returns the README's fenced code block of lang that contains
// marker.
func readmeBlock(t *testing.T, lang, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	for _, part := range strings.Split(string(b), "```"+lang+"\n")[1:] {
		code, _, ok := strings.Cut(part, "```")
		if ok && strings.Contains(code, marker) {
			return code
		}
	}
	t.Fatalf("README.md has no %s block with %q", lang, marker)
	return ""
}

// TestREADMEWebhookVerifiers runs the README's Node.js and Python
// signature checks, as written there, on a real delivery: they accept it,
// and refuse it with the body changed.
func TestREADMEWebhookVerifiers(t *testing.T) {
	t.Parallel()
	srv := heraldtest.StartDefault(t)
	app := srv.NewApp(t, "orders")
	rcv := heraldtest.NewReceiver(t, nil)
	tr, err := app.Full.CreateTrigger(t.Context(), app.ID, "orders", rcv.URL, "")
	require.NoError(t, err)
	_, err = app.Full.Publish(t.Context(), app.ID, "orders", []byte(`{"order":42,"note":"café ☕"}`))
	require.NoError(t, err)
	h := rcv.Next(t)
	headers := map[string]string{}
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[k] = h.Header.Get(k)
	}
	input, err := json.Marshal(map[string]any{"secret": tr.Secret, "headers": headers, "body": string(h.Body)})
	require.NoError(t, err)

	dir := t.TempDir()
	js := filepath.Join(dir, "verify.mjs")
	require.NoError(t, os.WriteFile(js, []byte(readmeBlock(t, "js", "function verify(secret, headers, body)")+`
import fs from "node:fs";
const { secret, headers, body } = JSON.parse(fs.readFileSync(0, "utf8"));
console.log(JSON.stringify([verify(secret, headers, body), verify(secret, headers, body + " ")]));
`), 0o600))
	py := filepath.Join(dir, "verify.py")
	require.NoError(t, os.WriteFile(py, []byte(readmeBlock(t, "python", "def verify(secret")+`
import json, sys
i = json.load(sys.stdin)
body = i["body"].encode()
print(json.dumps([verify(i["secret"], i["headers"], body), verify(i["secret"], i["headers"], body + b" ")]))
`), 0o600))

	for _, cmd := range [][]string{{"node", js}, {"python3", py}} {
		path, err := exec.LookPath(cmd[0])
		require.NoError(t, err, "%s is needed to test the README's example (./scripts/test installs Node.js; apt-get install python3)", cmd[0])
		c := exec.CommandContext(t.Context(), path, cmd[1:]...)
		c.Stdin = bytes.NewReader(input)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		require.NoError(t, err, "%s: %s", cmd[0], stderr.String())
		require.JSONEq(t, `[true,false]`, string(out), "%s: accepts the delivery, refuses it changed", cmd[0])
	}
}
