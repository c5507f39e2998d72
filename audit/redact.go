package audit

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"unicode/utf8"
)

// redactJSON applies fn to every string (object keys included) and every
// number of b, which must be valid compact JSON as produced by
// json.Marshal, and returns the rewritten JSON. Strings keep their position
// and order; a number that fn changes becomes a JSON string.
func redactJSON(b []byte, fn func([]byte) []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			end := stringEnd(b, i)
			out = append(out, redactString(b[i:end], fn)...)
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			end := i + 1
			for end < len(b) && isNumberByte(b[end]) {
				end++
			}
			out = append(out, redactNumber(b[i:end:end], fn)...)
			i = end
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}

// stringEnd returns the index just past the string literal starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// redactString scrubs one JSON string literal (quotes included).
func redactString(lit []byte, fn func([]byte) []byte) []byte {
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return lit // cannot happen for json.Marshal output
	}
	r := fn([]byte(s))
	if bytes.Equal(r, []byte(s)) {
		return lit
	}
	enc, _ := json.Marshal(string(r))
	return enc
}

// redactNumber scrubs one JSON number, turning it into a string if changed.
func redactNumber(num []byte, fn func([]byte) []byte) []byte {
	r := fn(num)
	if bytes.Equal(r, num) {
		return num
	}
	enc, _ := json.Marshal(string(r))
	return enc
}

// SecretRedactor replaces registered secret values, and their standard and
// URL-safe base64 and URL-escaped forms, with "[REDACTED:NAME]". Use its
// Redact method as a Log's redaction hook. It is safe for concurrent use
// until Zero is called.
type SecretRedactor struct {
	needles []needle
}

type needle struct {
	value, replacement []byte
}

// NewSecretRedactor copies values (secret name to value) into a redactor.
// Empty values are ignored. The caller may zero its map afterwards.
func NewSecretRedactor(values map[string][]byte) *SecretRedactor {
	r := &SecretRedactor{}
	for name, v := range values {
		if len(v) == 0 {
			continue
		}
		repl := []byte("[REDACTED:" + name + "]")
		for _, form := range encodedForms(v) {
			r.needles = append(r.needles, needle{value: form, replacement: repl})
		}
	}
	// Longest first, so that a value containing another is replaced whole.
	slices.SortFunc(r.needles, func(a, b needle) int {
		return cmp.Compare(len(b.value), len(a.value))
	})
	return r
}

// encodedForms returns v and its distinct encoded forms.
func encodedForms(v []byte) [][]byte {
	forms := [][]byte{bytes.Clone(v)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		forms = append(forms, []byte(enc.EncodeToString(v)))
	}
	forms = append(forms, []byte(url.QueryEscape(string(v))), []byte(url.PathEscape(string(v))))
	if !utf8.Valid(v) {
		forms = append(forms, jsonSanitized(v))
	}
	var out [][]byte
	for _, f := range forms {
		if !slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, f) }) {
			out = append(out, f)
		}
	}
	return out
}

// jsonSanitized returns v as encoding/json stores it in a string: every
// byte of invalid UTF-8 replaced by U+FFFD. A binary secret inside a payload
// string reaches the redactor only in this form.
func jsonSanitized(v []byte) []byte {
	out := make([]byte, 0, len(v)+8)
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, v[:n]...)
		}
		v = v[n:]
	}
	return out
}

// Redact returns b with every registered value replaced. It returns b
// itself when nothing matched.
func (r *SecretRedactor) Redact(b []byte) []byte {
	out := b
	for _, n := range r.needles {
		if bytes.Contains(out, n.value) {
			out = bytes.ReplaceAll(out, n.value, n.replacement)
		}
	}
	return out
}

// Zero wipes the redactor's copies of the secret values; afterwards it
// redacts nothing.
func (r *SecretRedactor) Zero() {
	for _, n := range r.needles {
		clear(n.value)
	}
	r.needles = nil
}
