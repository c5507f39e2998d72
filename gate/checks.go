package gate

import (
	"bytes"
	"math"
)

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// follows is a guard: the anchor comes right after one of the prefixes.
func follows(prefixes ...string) func([]byte, Hit) bool {
	return func(buf []byte, h Hit) bool {
		for _, p := range prefixes {
			if h.Start >= len(p) && string(buf[h.Start-len(p):h.Start]) == p {
				return true
			}
		}
		return false
	}
}

// hasSuffixFold reports whether b ends with the ASCII string s, ignoring case.
func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[len(b)-len(s):], s)
}

// equalFold compares b and the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if foldByte(b[i]) != foldByte(s[i]) {
			return false
		}
	}
	return true
}

// containsFold reports whether b contains the lower-case ASCII string s,
// ignoring the case of b.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if foldByte(b[i]) == s[0] && equalFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

// placeholders are values that document a secret rather than contain one.
var placeholders = []string{
	"changeme", "change_me", "xxxx", "****", "....", "example", "placeholder", "redacted", "dummy",
	"your_", "your-", "<", "${", "{{", "$(", "%(", "secret", "password", "passwd", "token",
	"null", "none", "undefined", "process.env", "os.environ", "getenv",
}

// notPlaceholder rejects template values such as ${DB_PASSWORD}, changeme,
// xxxx or <password>, and variable references ($VAR, %VAR%).
func notPlaceholder(v []byte) bool {
	if len(v) == 0 || v[0] == '$' || v[0] == '%' || v[0] == '@' {
		return false
	}
	for _, p := range placeholders {
		if containsFold(v, p) {
			return false
		}
	}
	return true
}

// highEntropySecret accepts values that look random: not a placeholder or
// a path, at least 8 bytes, Shannon entropy >= 3 bits per byte, and three
// character classes, or two (digits with letters, or both letter cases)
// when 16+ bytes long with entropy >= 3.5.
func highEntropySecret(v []byte) bool {
	if len(v) < 8 || !notPlaceholder(v) || shannon(v) < 3.0 || v[0] == '/' || v[0] == '~' || v[0] == '.' {
		return false // short, a template, low entropy or a path
	}
	var lower, upper, digit, other int
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z':
			lower = 1
		case c >= 'A' && c <= 'Z':
			upper = 1
		case c >= '0' && c <= '9':
			digit = 1
		default:
			other = 1
		}
	}
	classes := lower + upper + digit + other
	if classes >= 3 && (digit == 1 || len(v) >= 12) {
		return true // a short value needs a digit: "Read-only" is a word, not a secret
	}
	mixed := digit == 1 && other == 0 || lower == 1 && upper == 1
	return classes == 2 && mixed && len(v) >= 16 && shannon(v) >= 3.5
}

// shannon returns the Shannon entropy of v in bits per byte.
func shannon(v []byte) float64 {
	var counts [256]int
	for _, c := range v {
		counts[c]++
	}
	h, n := 0.0, float64(len(v))
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// luhn reports whether the decimal digits pass the Luhn checksum.
func luhn(digits []byte) bool {
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ibanValid checks an IBAN (upper case, no spaces): country length and the
// ISO 13616 mod-97 checksum.
func ibanValid(s []byte) bool {
	want, ok := ibanLengths[string(s[:2])]
	if !ok || len(s) != want {
		return false
	}
	rem := 0
	for i := range s {
		c := s[(i+4)%len(s)] // rotate the first four characters to the end
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// ibanLengths maps ISO country codes to their IBAN length.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// plausibleSecret is the value check of generic assignments: a
// high-entropy value that is not a slug of lower-case words
// (bert-base-uncased-v2, my-app-tls-2024) nor a typed identifier
// (req_01HV…: a lower-case type, '_' and a ULID or UUID).
func plausibleSecret(v []byte) bool {
	return highEntropySecret(v) && !wordSlug(v) && !typedID(v)
}

// wordSlug reports whether v is words joined by '-' (and maybe '_' or '.'),
// each all lower-case letters or a short lower-case/digit part ("v2",
// "2024").
func wordSlug(v []byte) bool {
	if bytes.IndexByte(v, '-') < 0 {
		return false
	}
	for _, part := range bytes.FieldsFunc(v, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		if !allIn(part, clsLowerLetters) && (len(part) > 4 || !allIn(part, clsLowerDigit)) {
			return false
		}
	}
	return true
}

var (
	clsLowerLetters = class("a-z")
	clsULID         = class("0-9", "A-H", "J-K", "M-N", "P-T", "V-Z") // Crockford base32
	clsUUID         = class("0-9", "a-f", "A-F", "-")
)

// typedID reports whether v is <2-12 lower-case letters>_<ULID or UUID>,
// the shape of request, event and object identifiers.
func typedID(v []byte) bool {
	u := bytes.IndexByte(v, '_')
	if u < 2 || u > 12 || !allIn(v[:u], clsLowerLetters) {
		return false
	}
	id := v[u+1:]
	return len(id) == 26 && allIn(id, clsULID) || len(id) == 36 && allIn(id, clsUUID) && bytes.Count(id, []byte("-")) == 4
}

func allIn(b []byte, c *byteClass) bool {
	for _, x := range b {
		if !c[x] {
			return false
		}
	}
	return true
}
