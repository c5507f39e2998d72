package policy

import (
	"encoding/json"
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
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	upper := strings.ToUpper(t)
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	} {
		if strings.HasSuffix(upper, suf.s) {
			upper = strings.TrimSpace(strings.TrimSuffix(upper, suf.s))
			mult = suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(upper, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q (want bytes or a number with K, M, G or T)", s)
	}
	v := n * float64(mult)
	if math.IsNaN(v) {
		return 0, fmt.Errorf("invalid size %q: not a number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	if v > 1<<62 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(v), nil
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
