package policy

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxEcho is how many bytes of a policy's own text an error message
// repeats: enough to recognise the value, not enough for a hostile file to
// make the message large.
const maxEcho = 64

// clip returns s whole when it is at most maxEcho bytes long, or its first
// maxEcho bytes followed by "…".
func clip[T ~string | ~[]byte](s T) string { return clipTo(s, maxEcho) }

// clipTo returns s whole when it is at most max bytes long, or its first
// max bytes (cut at a rune boundary) followed by "…".
func clipTo[T ~string | ~[]byte](s T, max int) string {
	if len(s) <= max {
		return string(s)
	}
	n := max
	for n > max-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return string(s[:n]) + "…"
}

// quote returns s clipped and quoted with Go escapes, so that control
// characters (terminal escapes among them) and invalid UTF-8 in a policy
// never reach an operator's terminal raw.
func quote[T ~string | ~[]byte](s T) string { return strconv.Quote(clip(s)) }

// keySegment returns key as one segment of a field path. A key that could
// be misread as path syntax (empty, or holding '.', '[', ']', '"' or '\'),
// that does not print as itself, or that is too long to echo whole is
// quoted: {"limits.memory":1} is reported as "limits.memory" in quotes, not
// as the nested field limits.memory.
func keySegment(key string) string {
	if key == "" || len(key) > maxEcho || strings.ContainsAny(key, `.[]"\`) {
		return quote(key)
	}
	for _, r := range key {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return quote(key)
		}
	}
	return key
}

// hasControl reports whether s holds an ASCII control character: a byte
// below 0x20 or DEL (0x7f).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
