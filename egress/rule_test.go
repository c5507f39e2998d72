package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	cases := []struct {
		in   string
		want Rule
	}{
		{"example.com", Rule{Host: "example.com"}},
		{"Example.COM.", Rule{Host: "example.com"}},
		{"*.example.com", Rule{Host: "example.com", Wildcard: true}},
		{"example.com:8443", Rule{Host: "example.com", Port: 8443}},
		{"*.example.com:443", Rule{Host: "example.com", Wildcard: true, Port: 443}},
		{"xn--bcher-kva.example", Rule{Host: "xn--bcher-kva.example"}},
		{"1.2.3.4", Rule{IP: netip.MustParseAddr("1.2.3.4")}},
		{"1.2.3.4:8080", Rule{IP: netip.MustParseAddr("1.2.3.4"), Port: 8080}},
		{"[::1]:443", Rule{IP: netip.MustParseAddr("::1"), Port: 443}},
		{"2001:db8::1", Rule{IP: netip.MustParseAddr("2001:db8::1")}},
		{"[::ffff:10.0.0.1]:80", Rule{IP: netip.MustParseAddr("10.0.0.1"), Port: 80}},
	}
	for _, c := range cases {
		got, err := ParseRule(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if err == nil {
			again, err := ParseRule(got.String())
			if err != nil || again != got {
				t.Errorf("ParseRule(%q.String()=%q) = %+v, %v", c.in, got.String(), again, err)
			}
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	for _, in := range []string{
		"", "*", "*.com", "*.", "example.com:0", "example.com:65536", "example.com:http", "example.com:+80",
		"exa mple.com", "bücher.example", "a..b", ".example.com", "-a.example", "example.com:", "[::1]",
		"fe80::1%eth0", "*.*.example.com", "foo.*.example.com", "example.com:80:80", "http://example.com",
		strings.Repeat("a", 64) + ".com",
	} {
		_, err := ParseRule(in)
		if err == nil {
			t.Errorf("ParseRule(%q) accepted a bad entry", in)
			continue
		}
		if !errors.Is(err, ErrInvalidRule) || !strings.Contains(err.Error(), "\""+in+"\"") {
			t.Errorf("ParseRule(%q) error %q does not wrap ErrInvalidRule or name the entry", in, err)
		}
	}
}

func TestRuleMatching(t *testing.T) {
	cases := []struct {
		rule, target string
		want         bool
	}{
		{"example.com", "example.com:443", true},
		{"example.com", "example.com:80", true},
		{"example.com", "EXAMPLE.com.:443", true},
		{"example.com", "example.com:8443", false},
		{"example.com", "evilexample.com:443", false},
		{"example.com", "example.com.evil.com:443", false},
		{"example.com", "www.example.com:443", false},
		{"example.com:8443", "example.com:8443", true},
		{"example.com:8443", "example.com:443", false},
		{"*.example.com", "api.example.com:443", true},
		{"*.example.com", "a.b.example.com:443", true},
		{"*.example.com", "example.com:443", false},
		{"*.example.com", "evilexample.com:443", false},
		{"*.example.com", "api.example.com.evil.com:443", false},
		{"*.example.com", "xexample.com:443", false},
		{"*.example.com:8080", "api.example.com:80", false},
		{"1.2.3.4", "1.2.3.4:443", true},
		{"1.2.3.4", "1.2.3.4:22", false},
		{"1.2.3.4:22", "1.2.3.4:22", true},
		{"1.2.3.4", "[::ffff:1.2.3.4]:443", true},
		{"1.2.3.4", "1.2.3.5:443", false},
		{"[::1]:443", "[::1]:443", true},
		{"example.com", "1.2.3.4:443", false},
		{"xn--bcher-kva.example", "XN--BCHER-KVA.example:443", true},
	}
	for _, c := range cases {
		tg, err := parseTarget(c.target, 0)
		if err != nil {
			t.Fatalf("parseTarget(%q): %v", c.target, err)
		}
		if got := mustRule(t, c.rule).matches(tg); got != c.want {
			t.Errorf("rule %q vs %q: got %v, want %v", c.rule, c.target, got, c.want)
		}
	}
}

func TestParseTargetRejects(t *testing.T) {
	for _, in := range []string{"", "example.com", "example.com:0", "bücher.example:443", "[fe80::1%25eth0]:443", "a b:80"} {
		if _, err := parseTarget(in, 0); !errors.Is(err, ErrBadRequest) {
			t.Errorf("parseTarget(%q) = %v, want ErrBadRequest", in, err)
		}
	}
}
