package gate

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// minEncodedCore is the shortest base64 fragment registered for a secret
// embedded at an unknown alignment; shorter fragments would redact noise.
const minEncodedCore = 8

// secretScanner redacts values registered with AddSecret, in their raw,
// base64 and URL-encoded forms.
type secretScanner struct {
	anchors []Anchor
	labels  []string
	reach   int
}

func (s *secretScanner) Name() string      { return "secrets" }
func (s *secretScanner) Anchors() []Anchor { return s.anchors }
func (s *secretScanner) Reach() int        { return s.reach }

// Rules describes the single rule of registered secrets.
func (s *secretScanner) Rules() []Rule {
	return []Rule{{ID: RuleRegisteredSecret, Scanner: "secrets", Severity: SeverityMedium,
		Description: "a secret registered with the credential proxy"}}
}

// Check reports the anchor itself: the anchor is the (encoded) secret.
func (s *secretScanner) Check(_ []byte, h Hit, emit func(Match)) {
	emit(Match{Rule: RuleRegisteredSecret, Start: h.Start, End: h.End, Label: s.labels[h.Anchor]})
}

// with returns a copy of s that also recognises value under name.
func (s *secretScanner) with(name string, value []byte) *secretScanner {
	out := &secretScanner{
		anchors: append([]Anchor(nil), s.anchors...),
		labels:  append([]string(nil), s.labels...),
		reach:   s.reach,
	}
	label := "secret:" + sanitizeName(name)
	for _, form := range secretForms(value) {
		out.anchors = append(out.anchors, Anchor{Keyword: form, CaseSensitive: true})
		out.labels = append(out.labels, label)
		out.reach = max(out.reach, len(form))
	}
	return out
}

// secretForms lists the byte strings that reveal value: the value itself,
// its base64 encodings (standard and URL alphabets, padded and raw), the
// parts of its base64 encoding that do not depend on neighbouring bytes
// when it is embedded at any of the three alignments (Basic auth headers),
// and its URL query and path escapes.
func secretForms(value []byte) []string {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	v := string(value)
	add(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		add(enc.EncodeToString(value))
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := 0; k < 3; k++ {
			padded := append(make([]byte, k), value...)
			full := enc.EncodeToString(padded)
			lo, hi := (8*k+5)/6, 8*len(padded)/6
			if hi-lo >= minEncodedCore {
				add(full[lo:hi])
			}
		}
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	return forms
}

// sanitizeName keeps a secret name printable in redaction labels.
func sanitizeName(name string) string {
	if name == "" {
		return "unnamed"
	}
	return strings.Map(func(r rune) rune {
		if r < 128 && (isWordByte(byte(r)) || r == '.' || r == '-') {
			return r
		}
		return '_'
	}, name)
}
