// Package thirdparty holds tests of Herald against software it does not
// control: SSE client libraries from npm and the Go module proxy, and an
// OpenAPI validator from npm, each run against real servers. The npm
// packages are pinned in package-lock.json beside this file; ./scripts/test
// installs them (npm ci).
package thirdparty
