package egress

import (
	"crypto/rand"
	"strings"
)

const (
	lowerChars = "abcdefghijklmnopqrstuvwxyz"
	upperChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars = "0123456789"
	hexLower   = "0123456789abcdef"
	hexUpper   = "0123456789ABCDEF"
	alnumChars = lowerChars + upperChars + digitChars

	// minPlaceholderLen keeps placeholders of short secrets unique enough
	// that they cannot collide with ordinary request text.
	minPlaceholderLen = 16
	// minRandomChars is the least number of random characters in a
	// placeholder (at least 60 bits of randomness).
	minRandomChars = 12
)

// GeneratePlaceholder returns a random stand-in for secret that looks like
// it: the same length (at least 16 characters) and the same character
// classes. Hex secrets get hex placeholders; otherwise each letter is
// replaced by a random letter of the same case and each digit by a random
// digit, while the URL-safe separators '-', '_', '.' and '~' stay where they
// are (so "sk-live-..." keeps its shape). Any other byte becomes a random
// alphanumeric character, so a placeholder always appears literally in URLs
// and header values. A secret made mostly of separators gets extra random
// characters appended.
func GeneratePlaceholder(secret []byte) string {
	n := max(len(secret), minPlaceholderLen)
	out := make([]byte, n)
	if alphabet, ok := hexAlphabet(secret); ok {
		for i := range out {
			out[i] = alphabet[randIndex(len(alphabet))]
		}
		return string(out)
	}
	random := 0
	for i := range out {
		c := byte('a') // padding of short secrets: random letters
		if i < len(secret) {
			c = secret[i]
		}
		out[i] = randomLike(c)
		if !isSeparator(c) {
			random++
		}
	}
	// A secret made mostly of separators would give a guessable placeholder:
	// top it up with random characters.
	for ; random < minRandomChars; random++ {
		out = append(out, alnumChars[randIndex(len(alnumChars))])
	}
	return string(out)
}

func isSeparator(c byte) bool { return c == '-' || c == '_' || c == '.' || c == '~' }

// hexAlphabet reports whether secret is a hex string (of one letter case) and
// returns the matching alphabet.
func hexAlphabet(secret []byte) (string, bool) {
	if len(secret) == 0 {
		return "", false
	}
	s := string(secret)
	isHex := func(alphabet string) bool {
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune(alphabet, rune(s[i])) {
				return false
			}
		}
		return true
	}
	switch {
	case strings.Trim(s, digitChars) == "":
		return "", false // all digits: keep the digit class
	case isHex(hexLower):
		return hexLower, true
	case isHex(hexUpper):
		return hexUpper, true
	}
	return "", false
}

func randomLike(c byte) byte {
	switch {
	case 'a' <= c && c <= 'z':
		return lowerChars[randIndex(len(lowerChars))]
	case 'A' <= c && c <= 'Z':
		return upperChars[randIndex(len(upperChars))]
	case '0' <= c && c <= '9':
		return digitChars[randIndex(len(digitChars))]
	case isSeparator(c):
		return c
	default:
		return alnumChars[randIndex(len(alnumChars))]
	}
}

// randIndex returns a uniform random integer in [0, n) for 0 < n <= 256,
// using rejection sampling to avoid modulo bias.
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}
