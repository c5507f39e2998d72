package credential

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseBinding(t *testing.T) {
	good := []struct {
		in   string
		want Binding
	}{
		{"TOKEN=env:API_TOKEN", Binding{Name: "TOKEN", Method: MethodEnv, EnvVar: "API_TOKEN"}},
		{"TOKEN=env", Binding{Name: "TOKEN", Method: MethodEnv, EnvVar: "TOKEN"}},
		{"db.pass-1=env:_X9", Binding{Name: "db.pass-1", Method: MethodEnv, EnvVar: "_X9"}},
		{"TOKEN=stdin", Binding{Name: "TOKEN", Method: MethodStdin}},
		{"TOKEN=fd:3", Binding{Name: "TOKEN", Method: MethodFD, FD: 3}},
		{"TOKEN=fd:255", Binding{Name: "TOKEN", Method: MethodFD, FD: 255}},
		{"TOKEN=proxy:api.github.com", Binding{Name: "TOKEN", Method: MethodProxy, Hosts: []string{"api.github.com"}}},
		{"TOKEN=proxy:a.example:443,*.b.example,[::1]:8080", Binding{Name: "TOKEN", Method: MethodProxy, Hosts: []string{"a.example:443", "*.b.example", "[::1]:8080"}}},
	}
	for _, tc := range good {
		got, err := ParseBinding(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseBinding(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if tc.in != "TOKEN=env" {
			if again, err := ParseBinding(got.String()); err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("String round trip of %q: %q, %v", tc.in, got.String(), err)
			}
		}
	}
	bad := []string{
		"TOKEN", "", "=stdin", "TO KEN=stdin", "TOKEN=", "TOKEN=magic", "TOKEN=ENV:X", "TOKEN=stdin:x",
		"TOKEN=env:", "TOKEN=env:1X", "TOKEN=env:A-B", "TOKEN=env:A=B",
		"TOKEN=fd:0", "TOKEN=fd:1", "TOKEN=fd:2", "TOKEN=fd:256", "TOKEN=fd:99999", "TOKEN=fd:", "TOKEN=fd:x",
		"TOKEN=fd:3a", "TOKEN=fd:-3", "TOKEN=fd:+3", "TOKEN=fd: 3", "TOKEN=fd:0x3",
		"TOKEN=proxy:", "TOKEN=proxy:,", "TOKEN=proxy:a,,b", "TOKEN=proxy:a b", "TOKEN=proxy:http://a/",
		strings.Repeat("N", 129) + "=stdin",
	}
	for _, in := range bad {
		if b, err := ParseBinding(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseBinding(%q) = %+v, %v; want ErrSyntax", in, b, err)
		}
	}
}

// TestParseErrorsDoNotEchoValues: a value typed where a method or source
// belongs must not be repeated back in the error.
func TestParseErrorsDoNotEchoValues(t *testing.T) {
	for _, in := range []string{testValue, "TOKEN=" + testValue, "TOKEN=env:" + testValue + "!", "TOKEN=fd:" + testValue,
		"TOKEN=proxy:" + testValue + "/x", "TOKEN=stdin:" + testValue, testValue + "/=stdin"} {
		if _, err := ParseBinding(in); err == nil || strings.Contains(err.Error(), testValue) {
			t.Errorf("ParseBinding(%q): %v", in, err)
		}
		if _, _, err := ParseSourceSpec(in); err == nil || strings.Contains(err.Error(), testValue) {
			t.Errorf("ParseSourceSpec(%q): %v", in, err)
		}
	}
}

func TestParseSourceSpec(t *testing.T) {
	name, src, err := ParseSourceSpec("GH=env:GITHUB_TOKEN")
	if err != nil || name != "GH" || src.String() != "env:GITHUB_TOKEN" {
		t.Errorf("env form: %q %v %v", name, src, err)
	}
	name, src, err = ParseSourceSpec("KEY=file:/run/secrets/a:b=c")
	if err != nil || name != "KEY" || src.String() != "file:/run/secrets/a:b=c" {
		t.Errorf("file form: %q %v %v", name, src, err)
	}
	for _, in := range []string{"GH", "=env:X", "GH=", "GH=env:", "GH=env:1A", "GH=file:", "GH=value:abc", "GH=cmd:pass", "GH=stdin", "G H=env:X"} {
		if _, _, err := ParseSourceSpec(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseSourceSpec(%q): err = %v, want ErrSyntax", in, err)
		}
	}
}

func TestBindingValidate(t *testing.T) {
	for _, b := range []Binding{
		{Name: "A"}, {Name: "A", Method: Method(42)}, {Name: "", Method: MethodStdin},
		{Name: "A", Method: MethodFD, FD: 2}, {Name: "A", Method: MethodEnv}, {Name: "A", Method: MethodProxy},
	} {
		if err := b.Validate(); !errors.Is(err, ErrSyntax) {
			t.Errorf("Validate(%+v) = %v", b, err)
		}
	}
	if MethodFD.String() != "fd" || Method(9).String() != "Method(9)" {
		t.Error("Method.String")
	}
}
