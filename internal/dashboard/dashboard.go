// Package dashboard serves Herald's live dashboard: one HTML page and its
// script, style sheet and icon, embedded in the binary so that a single
// file is all there is to deploy and nothing is fetched from elsewhere.
//
// The page talks to the /v1 API of the server that served it, with the key
// the user pastes (kept in the tab's sessionStorage). It holds no secret of
// its own, so it can be served to anyone.
//
// # Caching
//
// Asset URLs in the page carry a hash of the asset (/dashboard/app.js?v=…),
// so a request with the current hash may be cached for a year and a new
// build is picked up at once; the page itself, and any asset asked for
// without the current hash, must be revalidated (ETag, 304).
//
// # Security
//
// Every response carries a Content-Security-Policy that allows scripts,
// styles, images and connections from this origin only, and nothing inline:
// the page must work without 'unsafe-inline'.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// AssetPrefix is the path under which the page's assets are served.
const AssetPrefix = "/dashboard/"

// ContentSecurityPolicy is sent with every dashboard response: same origin
// only, no inline script or style, no framing, no form posts (every form is
// handled by script; a native submission would put the key in a URL).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Cache-Control values.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// files is read-only: embed.FS cannot be changed at run time.
//
//go:embed assets
var files embed.FS

// contentType names the types of the files in assets/, set here so that
// they do not depend on the machine's MIME tables.
func contentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}

// Options configures a Handler.
type Options struct {
	// NotFound answers a request for an asset that does not exist, so that
	// the API can keep its one error format. Nil means http.NotFound.
	NotFound http.Handler
}

type asset struct {
	body        []byte
	contentType string
	version     string // first 16 hex digits of the SHA-256 of body
}

// Handler serves the dashboard page at any path it is mounted on that does
// not start with AssetPrefix, and the assets under AssetPrefix. It is safe
// for concurrent use: everything is computed by New and only read after.
type Handler struct {
	page     asset
	assets   map[string]asset // by file name, like "app.js"
	notFound http.Handler
}

// New reads the embedded files and renders the page with versioned asset
// URLs. The files are part of the binary, so a failure here is a bug in
// this package (its tests would catch it) and New panics.
func New(opts Options) *Handler {
	h, err := build(files)
	if err != nil {
		panic(fmt.Sprintf("dashboard: embedded assets: %v", err))
	}
	h.notFound = opts.NotFound
	if h.notFound == nil {
		h.notFound = http.NotFoundHandler()
	}
	return h
}

func build(fsys fs.FS) (*Handler, error) {
	h := &Handler{assets: make(map[string]asset)}
	entries, err := fs.ReadDir(fsys, "assets")
	if err != nil {
		return nil, fmt.Errorf("read assets: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "index.html" {
			continue
		}
		ct, ok := contentType(name)
		if !ok {
			return nil, fmt.Errorf("asset %q: no content type for its extension", name)
		}
		body, err := fs.ReadFile(fsys, "assets/"+name)
		if err != nil {
			return nil, fmt.Errorf("read asset: %w", err)
		}
		h.assets[name] = asset{body: body, contentType: ct, version: version(body)}
	}
	src, err := fs.ReadFile(fsys, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	tmpl, err := template.New("index.html").Option("missingkey=error").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a, ok := h.assets[name]
			if !ok {
				return "", fmt.Errorf("no asset %q", name)
			}
			return AssetPrefix + name + "?v=" + a.version, nil
		},
	}).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parse page: %w", err)
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, nil); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	ct, _ := contentType("index.html")
	h.page = asset{body: page.Bytes(), contentType: ct, version: version(page.Bytes())}
	return h, nil
}

func version(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, isAsset := strings.CutPrefix(r.URL.Path, AssetPrefix)
	if !isAsset {
		h.serve(w, r, "index.html", h.page, cacheRevalidate)
		return
	}
	a, ok := h.assets[name]
	if !ok {
		h.notFound.ServeHTTP(w, r)
		return
	}
	cache := cacheRevalidate
	if r.URL.Query().Get("v") == a.version {
		cache = cacheImmutable
	}
	h.serve(w, r, name, a, cache)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name string, a asset, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", `"`+a.version+`"`)
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// The page's URL holds nothing secret, but the stream URLs it opens
	// carry the key as ?access_token=: never let a URL leave in a Referer.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	// ServeContent answers If-None-Match with 304 from the ETag above and
	// handles HEAD and ranges; a zero time sends no Last-Modified.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
