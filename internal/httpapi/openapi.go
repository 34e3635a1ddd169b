package httpapi

import (
	_ "embed" // the OpenAPI document is compiled in
	"io"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 description of the whole HTTP API, served at
// GET /openapi.json. Its test checks it against the route table and sends
// its examples (x-herald-examples) to a real server. A string, so nothing
// can change it.
//
//go:embed openapi.json
var openAPIDoc string

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, openAPIDoc) // the client may be gone; there is nothing to do about it
}
