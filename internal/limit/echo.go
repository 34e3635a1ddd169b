package limit

import "unicode/utf8"

// MaxEcho is the most of a client's input an error message repeats:
// enough to recognise it, never a way to make the server send back (or
// log) megabytes.
const MaxEcho = 64

// Echo is s cut to MaxEcho bytes on a UTF-8 boundary, with "…" marking a
// cut, for quoting client input in an error message.
func Echo(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	cut := MaxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
