package egress

import (
	"strings"
	"testing"
	"unicode"
)

func classes(s string) (lower, upper, digit bool) {
	for _, c := range s {
		lower = lower || unicode.IsLower(c)
		upper = upper || unicode.IsUpper(c)
		digit = digit || unicode.IsDigit(c)
	}
	return
}

func TestGeneratePlaceholder(t *testing.T) {
	secrets := []string{
		"ghp_" + strings.Repeat("aB3x", 9),
		"sk-live-ABCDEFGHIJKLMNOPQRSTUVWX",
		"0123456789abcdef0123456789abcdef",
		"DEADBEEF00112233DEADBEEF00112233",
		"12345678901234567890",
		"short",
		"p@ss/w+rd==AAAAAAAAAAAAAAAAAAAAAA",
		"----------------",
		"\x00\x01binary\xff\xfe",
	}
	for _, s := range secrets {
		a, b := GeneratePlaceholder([]byte(s)), GeneratePlaceholder([]byte(s))
		if a == b || a == s {
			t.Errorf("%q: placeholders not random: %q %q", s, a, b)
		}
		if len(a) < max(len(s), minPlaceholderLen) {
			t.Errorf("%q: placeholder %q shorter than the secret", s, a)
		}
		if len(s) >= minPlaceholderLen && strings.Trim(s, "-") != "" && len(a) != len(s) {
			t.Errorf("%q: placeholder %q changes the length", s, a)
		}
		for i := 0; i < len(a); i++ {
			if c := a[i]; !(c < 0x80 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || isSeparator(c))) {
				t.Errorf("%q: placeholder %q has a character unsafe in URLs: %q", s, a, c)
			}
		}
	}
	// Character classes follow the secret.
	if p := GeneratePlaceholder([]byte("12345678901234567890")); strings.Trim(p, digitChars) != "" {
		t.Errorf("digit secret got %q", p)
	}
	if p := GeneratePlaceholder([]byte("0123456789abcdef0123456789abcdef")); strings.Trim(p, hexLower) != "" {
		t.Errorf("hex secret got %q", p)
	}
	p := GeneratePlaceholder([]byte("sk-live-ABCDEFGHIJKLMNOPQRSTUVWX"))
	if p[2] != '-' || p[7] != '-' {
		t.Errorf("separators moved: %q", p)
	}
	if lower, upper, _ := classes(p[8:]); lower || !upper {
		t.Errorf("upper-case part changed class: %q", p)
	}
}
