package gate

import (
	"bytes"
	"math"
)

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// followedBy is a guard: the n bytes after the anchor all satisfy ok.
func followedBy(ok func(byte) bool, n int) func([]byte, Hit) bool {
	return func(buf []byte, h Hit) bool {
		if h.End+n > len(buf) {
			return false
		}
		for _, c := range buf[h.End : h.End+n] {
			if !ok(c) {
				return false
			}
		}
		return true
	}
}

// precededBy is a guard: the n bytes before the anchor all satisfy ok.
func precededBy(ok func(byte) bool, n int) func([]byte, Hit) bool {
	return func(buf []byte, h Hit) bool {
		if h.Start < n {
			return false
		}
		for _, c := range buf[h.Start-n : h.Start] {
			if !ok(c) {
				return false
			}
		}
		return true
	}
}

// placeholders are values that document a secret rather than contain one.
var placeholders = [][]byte{
	[]byte("changeme"), []byte("change_me"), []byte("xxxx"), []byte("****"), []byte("...."),
	[]byte("example"), []byte("placeholder"), []byte("redacted"), []byte("dummy"),
	[]byte("your_"), []byte("your-"), []byte("<"), []byte("${"), []byte("{{"), []byte("$("),
	[]byte("%("), []byte("secret"), []byte("password"), []byte("passwd"), []byte("token"),
	[]byte("null"), []byte("none"), []byte("undefined"), []byte("process.env"), []byte("os.environ"),
	[]byte("getenv"),
}

// notPlaceholder rejects template values such as ${DB_PASSWORD}, changeme,
// xxxx or <password>, and variable references ($VAR, %VAR%).
func notPlaceholder(v []byte) bool {
	if len(v) == 0 || v[0] == '$' || v[0] == '%' || v[0] == '@' {
		return false
	}
	lower := bytes.ToLower(v)
	for _, p := range placeholders {
		if bytes.Contains(lower, p) {
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
