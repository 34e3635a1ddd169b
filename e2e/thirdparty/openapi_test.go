package thirdparty_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/heraldtest"
)

// TestOpenAPIPassesAStrictValidator validates the /openapi.json a real
// server serves with @apidevtools/swagger-parser (openapi.mjs): the OpenAPI
// 3.1 schema and the rules it cannot express. It has no warnings, only
// errors, and there must be none. The same validator must refuse a copy
// with the defect a newcomer's validator found (a license with a name only),
// or this test proves nothing.
func TestOpenAPIPassesAStrictValidator(t *testing.T) {
	t.Parallel()
	_, err := os.Stat("node_modules/@apidevtools/swagger-parser")
	require.NoError(t, err, "the npm packages of e2e/thirdparty are not installed: ./scripts/test installs them (npm ci in e2e/thirdparty)")
	srv := heraldtest.StartDefault(t)
	resp, err := http.Get(srv.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	doc, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	validate := func(doc []byte) (string, error) {
		file := filepath.Join(t.TempDir(), "openapi.json")
		require.NoError(t, os.WriteFile(file, doc, 0o600))
		out, err := exec.CommandContext(t.Context(), "node", "openapi.mjs", file).CombinedOutput()
		return string(out), err
	}
	out, err := validate(doc)
	require.NoError(t, err, out)
	require.Equal(t, "valid\n", out)

	var bad map[string]any
	require.NoError(t, json.Unmarshal(doc, &bad))
	bad["info"].(map[string]any)["license"] = map[string]any{"name": "See the repository"}
	badDoc, err := json.Marshal(bad)
	require.NoError(t, err)
	out, err = validate(badDoc)
	require.Error(t, err, "the validator must refuse a license without identifier or url")
	require.Contains(t, out, "#/info/license")
}
