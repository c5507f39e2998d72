package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In policy files it is written either as a plain
// integer of bytes or as a string with a binary suffix: "512K", "512M", "1G",
// "1GiB", "64MB" (all suffixes are powers of 1024).
type Size int64

// ParseSize parses a size such as "512M", "1G", "1048576", "64KiB" or
// "1.5G". The grammar is strict: decimal digits, an optional decimal
// fraction, then optionally spaces and a unit: B, or K, M, G or T alone or
// followed by B or iB (ASCII letters in either case, all powers of 1024).
// ASCII spaces around the size are ignored. There is no sign, exponent,
// hexadecimal form or digit separator. The value is computed exactly: an
// integer beyond int64 is an error, not a rounded float, and a fraction
// needs a unit and must come to a whole number of bytes ("0.5K" is 512,
// "0.3K" is an error, never silently 307).
func ParseSize(s string) (Size, error) {
	t := trimSpace(s)
	i := digitsEnd(t, 0)
	if i == 0 {
		return 0, sizeError(s, sizeSyntax)
	}
	whole, frac := t[:i], ""
	if i < len(t) && t[i] == '.' {
		j := digitsEnd(t, i+1)
		if j == i+1 {
			return 0, sizeError(s, sizeSyntax)
		}
		frac, i = t[i+1:j], j
	}
	unit := trimSpace(t[i:])
	mult, ok := unitMultiplier(unit)
	switch {
	case !ok:
		return 0, sizeError(s, sizeSyntax)
	case frac != "" && unit == "":
		return 0, sizeError(s, ": a fraction needs a unit (K, M, G or T)")
	}
	n, ok := parseDecimal(whole)
	hi, lo := bits.Mul64(n, mult)
	if !ok || hi != 0 || lo > math.MaxInt64 {
		return 0, sizeError(s, ": too large")
	}
	f, ok := fractionBytes(frac, mult)
	if !ok {
		return 0, sizeError(s, ": not a whole number of bytes (use a smaller unit)")
	}
	if lo+f > math.MaxInt64 { // f < 1<<40: no wrap-around
		return 0, sizeError(s, ": too large")
	}
	return Size(lo + f), nil
}

const sizeSyntax = ` (want bytes, or a decimal number with a unit such as "512M" or "1.5G")`

// sizeError builds its message without fmt so that ParseSize does not leak
// s: a caller's string(bytes) conversion then need not allocate.
func sizeError(s, why string) error { return errors.New("invalid size " + quote(s) + why) }

// trimSpace removes ASCII spaces and tabs (and CR, LF) from both ends of s.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// digitsEnd returns the index after the run of decimal digits at s[i:].
func digitsEnd(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// parseDecimal parses a non-empty run of decimal digits exactly; ok is
// false above math.MaxInt64.
func parseDecimal(digits string) (n uint64, ok bool) {
	for i := 0; i < len(digits); i++ {
		d := uint64(digits[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// unitMultiplier returns the multiplier of a size unit: "" and B are bytes;
// K, M, G and T may be followed by B or iB.
func unitMultiplier(u string) (uint64, bool) {
	switch {
	case u == "":
		return 1, true
	case len(u) == 1 && u[0]|0x20 == 'b':
		return 1, true
	case len(u) == 2 && u[1]|0x20 != 'b',
		len(u) == 3 && (u[1]|0x20 != 'i' || u[2]|0x20 != 'b'),
		len(u) > 3:
		return 0, false
	}
	m := unitPrefix(u[0])
	return m, m != 0
}

// unitPrefix returns the multiplier of the binary prefix letter c, or 0.
func unitPrefix(c byte) uint64 {
	switch c | 0x20 {
	case 'k':
		return 1 << 10
	case 'm':
		return 1 << 20
	case 'g':
		return 1 << 30
	case 't':
		return 1 << 40
	}
	return 0
}

// maxFracDigits is the longest fraction that can come to whole bytes: a
// multiple of 2^-40 (the T unit) has at most 40 decimal places.
const maxFracDigits = 40

// fractionBytes returns the decimal fraction 0.frac times mult, a power of
// two, and whether that is a whole number. The result is exact however many
// digits are written.
func fractionBytes(frac string, mult uint64) (uint64, bool) {
	frac = strings.TrimRight(frac, "0")
	// Without trailing zeros, 0.frac is a multiple of 2^-p only if it has
	// at most p decimal places.
	p := bits.TrailingZeros64(mult)
	switch {
	case len(frac) > p:
		return 0, false
	case len(frac) <= 18:
		// frac/10^k * mult in 128 bits; the quotient is below mult, so
		// Div64 cannot overflow.
		f, _ := parseDecimal(frac)
		hi, lo := bits.Mul64(f, mult)
		q, r := bits.Div64(hi, lo, pow10[len(frac)])
		return q, r == 0
	}
	return doubleFraction(frac, p)
}

// pow10 holds the powers of ten that fit in a uint64 fraction bound.
var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// doubleFraction returns 0.frac times 2^p by doubling the decimal digits p
// times, collecting the carries as the integer part, and whether nothing is
// left of the fraction. It serves fractions too long for 64 bits.
func doubleFraction(frac string, p int) (uint64, bool) {
	var d [maxFracDigits]byte
	for i := range len(frac) {
		d[i] = frac[i] - '0'
	}
	var whole uint64
	for range p {
		var carry byte
		for i := len(frac) - 1; i >= 0; i-- {
			x := d[i]*2 + carry
			d[i], carry = x%10, x/10
		}
		whole = whole<<1 | uint64(carry)
	}
	for _, c := range d[:len(frac)] {
		if c != 0 {
			return 0, false
		}
	}
	return whole, true
}

// String formats the size with the largest exact binary unit.
func (s Size) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if s != 0 && int64(s)%u.m == 0 {
			return strconv.FormatInt(int64(s)/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalJSON writes the size in its short string form.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a JSON number of bytes or a size string.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := ParseSize(str)
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid size %s (want bytes or a string like \"512M\")", quote(b))
	}
	*s = Size(n)
	return nil
}

// Duration is a time.Duration written in Go duration syntax ("30s", "1m30s").
type Duration time.Duration

// MarshalJSON writes the duration in Go syntax.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts only Go duration strings; bare numbers are rejected
// because their unit would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("invalid duration %s (want a string like \"30s\")", quote(b))
	}
	v, err := time.ParseDuration(str)
	if err != nil {
		return durationError(str)
	}
	*d = Duration(v)
	return nil
}

// durationError reports a string that time.ParseDuration rejects. It gives
// its own reason rather than time's message, which repeats the whole input.
func durationError[T ~string | ~[]byte](s T) error {
	why := ` (want Go syntax such as "30s" or "1m30s", at most 2562047h)`
	if len(s) > 0 && strings.Trim(string(s), "+-.0123456789") == "" {
		why = `: missing unit (want Go syntax such as "30s")`
	}
	return errors.New("invalid duration " + quote(s) + why)
}
