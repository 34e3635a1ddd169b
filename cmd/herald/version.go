package main

import (
	"runtime/debug"
	"strings"
)

// version describes this binary from the build information the go command
// records: the module version (a tag or a pseudo-version for `go install
// module@version`, or what `go build` stamps from the checkout), the VCS
// revision and whether the tree had changes, and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "herald (no build information)"
	}
	return describeBuild(bi)
}

func describeBuild(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var b strings.Builder
	b.WriteString("herald " + v)
	if rev != "" {
		b.WriteString(" revision " + rev)
		if at != "" {
			b.WriteString(" (" + at + ")")
		}
		if modified == "true" {
			b.WriteString(" with uncommitted changes")
		}
	} else {
		b.WriteString(" (no VCS revision recorded)")
	}
	b.WriteString(" " + bi.GoVersion)
	return b.String()
}
