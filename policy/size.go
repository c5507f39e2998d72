package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In policy files it is written either as a plain
// integer of bytes or as a string with a binary suffix: "512K", "512M", "1G",
// "1GiB", "64MB" (all suffixes are powers of 1024).
type Size int64

// ParseSize parses a size such as "512M", "1G", "1048576" or "64KiB".
// Unit suffixes are ASCII letters in either case.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	num, mult := splitUnit(t)
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil {
		return 0, sizeError(s, " (want bytes or a number with K, M, G or T)")
	}
	v := n * float64(mult)
	if math.IsNaN(v) {
		return 0, sizeError(s, ": not a number")
	}
	if v < 0 {
		return 0, sizeError(s, ": negative")
	}
	if v > 1<<62 {
		return 0, sizeError(s, ": too large")
	}
	return Size(v), nil
}

// sizeError builds its message without fmt so that ParseSize does not leak
// s: a caller's string(bytes) conversion then need not allocate.
func sizeError(s, why string) error { return errors.New("invalid size " + strconv.Quote(s) + why) }

// splitUnit splits a non-empty size into its number and the multiplier of
// its unit: K, M, G or T, each optionally followed by B or iB, or B alone.
func splitUnit(t string) (string, int64) {
	n := len(t)
	if t[n-1]|0x20 != 'b' {
		if m := unitPrefix(t[n-1]); m != 0 {
			return t[:n-1], m
		}
		return t, 1
	}
	if n >= 3 && t[n-2]|0x20 == 'i' {
		if m := unitPrefix(t[n-3]); m != 0 {
			return t[:n-3], m
		}
	}
	if n >= 2 {
		if m := unitPrefix(t[n-2]); m != 0 {
			return t[:n-2], m
		}
	}
	return t[:n-1], 1
}

// unitPrefix returns the multiplier of the binary prefix letter c, or 0.
func unitPrefix(c byte) int64 {
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
		return fmt.Errorf("invalid size %s (want bytes or a string like \"512M\")", b)
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
		return fmt.Errorf("invalid duration %s (want a string like \"30s\")", b)
	}
	v, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", str, err)
	}
	*d = Duration(v)
	return nil
}
