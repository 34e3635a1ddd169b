//go:build !unix

package config

// openFileLimit is unknown off Unix.
func openFileLimit() (uint64, bool) { return 0, false }
