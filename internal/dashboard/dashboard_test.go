package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/dashboard"
)

func get(t *testing.T, h http.Handler, target string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func requireSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	require.Equal(t, dashboard.ContentSecurityPolicy, csp)
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "script-src 'self'")
	require.NotContains(t, csp, "unsafe-inline")
	require.NotContains(t, csp, "unsafe-eval")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
}

// assetURLs returns the versioned asset URLs the page references.
func assetURLs(t *testing.T, page string) []string {
	t.Helper()
	urls := regexp.MustCompile(`(?:src|href)="(/dashboard/[^"]+)"`).FindAllStringSubmatch(page, -1)
	var out []string
	for _, u := range urls {
		out = append(out, u[1])
	}
	return out
}

func TestPageIsServedWithStrictHeadersAndRevalidation(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	resp, page := get(t, h, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), "the page must be revalidated so a new build shows at once")
	requireSecurityHeaders(t, resp)
	require.Contains(t, page, "<title>Herald dashboard</title>")

	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	resp, body := get(t, h, "/", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, body)
}

// The CSP allows no inline script or style, so the page must have none:
// every script has a src, and no element has a style or on… attribute.
func TestPageHasNothingInlineTheCSPWouldBlock(t *testing.T) {
	t.Parallel()
	_, page := get(t, dashboard.New(dashboard.Options{}), "/")
	for _, m := range regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		require.Contains(t, m[1], `src="/dashboard/`, "every script is a same-origin file")
		require.Empty(t, strings.TrimSpace(m[2]), "no inline script")
	}
	require.NotContains(t, page, "<style")
	require.NotRegexp(t, `\sstyle=`, page)
	require.NotRegexp(t, `\son[a-z]+=`, page)
	require.NotContains(t, page, "http://")
	require.NotContains(t, page, "https://", "nothing is fetched from elsewhere")
}

func TestAssetsAreVersionedAndCachedForAYear(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	_, page := get(t, h, "/")
	urls := assetURLs(t, page)
	wantTypes := map[string]string{
		"app.js":      "text/javascript; charset=utf-8",
		"style.css":   "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	}
	seen := map[string]bool{}
	for _, u := range urls {
		name, version, ok := strings.Cut(strings.TrimPrefix(u, dashboard.AssetPrefix), "?v=")
		require.True(t, ok, "asset URL %s carries a version", u)
		require.Regexp(t, `^[0-9a-f]{16}$`, version)
		seen[name] = true

		resp, body := get(t, h, u)
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		require.Equal(t, wantTypes[name], resp.Header.Get("Content-Type"), u)
		require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"), u)
		require.NotEmpty(t, body)
		requireSecurityHeaders(t, resp)

		// Without the current version (an old page, a typed URL) the
		// browser must revalidate: the content may have changed.
		resp, _ = get(t, h, dashboard.AssetPrefix+name+"?v=0000000000000000")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	}
	for name := range wantTypes {
		require.True(t, seen[name], "the page references %s", name)
	}
}

func TestUnknownAssetUsesTheNotFoundHandler(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{NotFound: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})})
	resp, _ := get(t, h, "/dashboard/nope.js")
	require.Equal(t, http.StatusTeapot, resp.StatusCode)
	resp, _ = get(t, h, "/dashboard/index.html")
	require.Equal(t, http.StatusTeapot, resp.StatusCode, "the page template is not served raw")
	resp, _ = get(t, dashboard.New(dashboard.Options{}), "/dashboard/nope.js")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestOnlyGetAndHead(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", strings.NewReader("x")))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodHead, "/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String())
}

// The script builds the page with DOM calls and textContent only: a message
// is data, never markup.
func TestScriptNeverWritesMarkup(t *testing.T) {
	t.Parallel()
	h := dashboard.New(dashboard.Options{})
	_, page := get(t, h, "/")
	for _, u := range assetURLs(t, page) {
		if !strings.Contains(u, ".js?") {
			continue
		}
		_, js := get(t, h, u)
		// Failure messages name the string, not the whole script.
		require.True(t, strings.Contains(js, "new EventSource("), "%s opens the stream", u)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			require.False(t, strings.Contains(js, bad), "%s uses %s", u, bad)
		}
		require.Equal(t, 1, strings.Count(js, `"access_token"`), "the key goes into a URL in one place only: the stream's")
	}
}
