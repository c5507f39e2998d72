package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/policy"
)

// TestParseJSONErrors covers every error class of the decoder: each case
// names the field the error must carry (FieldError.Field, exactly) and the
// sentinel it must wrap besides ErrInvalid.
func TestParseJSONErrors(t *testing.T) {
	deep := `{"name":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
	tests := []struct {
		name  string
		in    string
		field string // "" when the error is not inside a field
		class error  // nil: a wrong value
	}{
		// Syntax, inside a field.
		{"invalid escape", `{"name":"a\qb"}`, "name", policy.ErrSyntax},
		{"raw newline in string", "{\"hostname\":\"a\nb\"}", "hostname", policy.ErrSyntax},
		{"raw NUL in string", "{\"workdir\":\"/a\x00\"}", "workdir", policy.ErrSyntax},
		{"invalid UTF-8", "{\"env\":{\"A\":\"\xff\"}}", "env", policy.ErrSyntax},
		{"truncated UTF-8", "{\"name\":\"\xe2\x82\"}", "name", policy.ErrSyntax},
		{"overlong UTF-8", "{\"name\":\"\xc0\xaf\"}", "name", policy.ErrSyntax},
		{"UTF-8 surrogate", "{\"name\":\"\xed\xa0\x80\"}", "name", policy.ErrSyntax},
		{"lone high surrogate", `{"name":"\ud800"}`, "name", policy.ErrSyntax},
		{"lone high surrogate then text", `{"name":"\ud800abcdef"}`, "name", policy.ErrSyntax},
		{"high surrogate then high", `{"name":"\ud800\ud800"}`, "name", policy.ErrSyntax},
		{"lone low surrogate", `{"name":"\udc00"}`, "name", policy.ErrSyntax},
		{"short \\u", `{"name":"\u12"}`, "name", policy.ErrSyntax},
		{"bad hex", `{"name":"\u12g4"}`, "name", policy.ErrSyntax},
		{"escape in key", `{"s\ecomp":"off"}`, "", policy.ErrSyntax},
		{"unterminated string", `{"name":"abc`, "name", policy.ErrSyntax},
		{"leading zero", `{"limits":{"pids":01}}`, "limits.pids", policy.ErrSyntax},
		{"bare fraction", `{"limits":{"cpus":.5}}`, "limits.cpus", policy.ErrSyntax},
		{"empty fraction", `{"limits":{"cpus":1.}}`, "limits.cpus", policy.ErrSyntax},
		{"empty exponent", `{"limits":{"cpus":1e}}`, "limits.cpus", policy.ErrSyntax},
		{"plus sign", `{"limits":{"cpus":+1}}`, "limits.cpus", policy.ErrSyntax},
		{"minus alone", `{"limits":{"cpus":-}}`, "limits.cpus", policy.ErrSyntax},
		{"hex number", `{"limits":{"pids":0x10}}`, "limits.pids", policy.ErrSyntax},
		{"number then garbage", `{"limits":{"cpus":1.5x}}`, "limits.cpus", policy.ErrSyntax},
		{"literal then garbage", `{"inherit_env":truex}`, "inherit_env", policy.ErrSyntax},
		{"null then garbage", `{"name":nullx}`, "name", policy.ErrSyntax},
		{"bad literal", `{"inherit_env":tru}`, "inherit_env", policy.ErrSyntax},
		{"capital literal", `{"inherit_env":True}`, "inherit_env", policy.ErrSyntax},
		{"trailing comma in object", `{"limits":{"pids":1,}}`, "limits", policy.ErrSyntax},
		{"trailing comma in array", `{"seccomp_allow":["read",]}`, "seccomp_allow[1]", policy.ErrSyntax},
		{"leading comma in array", `{"seccomp_allow":[,"read"]}`, "seccomp_allow[0]", policy.ErrSyntax},
		{"missing colon", `{"limits":{"pids" 1}}`, "limits", policy.ErrSyntax},
		{"single quotes", `{'name':'x'}`, "", policy.ErrSyntax},
		// Syntax, outside any field.
		{"empty input", ``, "", policy.ErrSyntax},
		{"only space", " \n\t ", "", policy.ErrSyntax},
		{"byte order mark", "\xef\xbb\xbf{}", "", policy.ErrSyntax},
		{"unclosed object", `{"name":"x"`, "", policy.ErrSyntax},
		{"trailing data", `{} x`, "", policy.ErrSyntax},
		{"second object", `{}{}`, "", policy.ErrSyntax},
		{"trailing NUL", "{}\x00", "", policy.ErrSyntax},
		{"vertical tab as space", "{\v}", "", policy.ErrSyntax},
		// Unknown fields, exact case.
		{"unknown top", `{"foo":1}`, "foo", policy.ErrUnknownField},
		{"unknown nested", `{"limits":{"foo":1}}`, "limits.foo", policy.ErrUnknownField},
		{"unknown in mount", `{"filesystem":{"mounts":[{"source":"/a","dest":"/a","mode":"ro"},{"opts":1}]}}`, "filesystem.mounts[1].opts", policy.ErrUnknownField},
		{"unknown in network", `{"network":{"mode":"off","hosts":[]}}`, "network.hosts", policy.ErrUnknownField},
		{"wrong case", `{"Seccomp":"strict"}`, "Seccomp", policy.ErrUnknownField},
		{"wrong case nested", `{"limits":{"CPUs":1}}`, "limits.CPUs", policy.ErrUnknownField},
		{"unknown with null value", `{"limits":{"foo":null}}`, "limits.foo", policy.ErrUnknownField},
		{"unknown key with a dot", `{"limits.memory":1}`, `"limits.memory"`, policy.ErrUnknownField},
		{"unknown nested key with a dot", `{"limits":{"a.b":1}}`, `limits."a.b"`, policy.ErrUnknownField},
		{"unknown key like an index", `{"limits":{"[0]":1}}`, `limits."[0]"`, policy.ErrUnknownField},
		{"unknown key with a quote", `{"limits":{"a\"b":1}}`, `limits."a\"b"`, policy.ErrUnknownField},
		{"unknown empty key", `{"limits":{"":1}}`, `limits.""`, policy.ErrUnknownField},
		{"unknown key with an escape", `{"limits":{"\u001b[2J":1}}`, `limits."\x1b[2J"`, policy.ErrUnknownField},
		// Duplicate keys.
		{"duplicate top", `{"seccomp":"off","seccomp":"strict"}`, "seccomp", policy.ErrDuplicateField},
		{"duplicate after null", `{"seccomp":null,"seccomp":"off"}`, "seccomp", policy.ErrDuplicateField},
		{"duplicate by escape", `{"seccomp":"off","s\u0065ccomp":"strict"}`, "seccomp", policy.ErrDuplicateField},
		{"duplicate nested", `{"limits":{"cpus":1,"pids":2,"cpus":2}}`, "limits.cpus", policy.ErrDuplicateField},
		{"duplicate in mount", `{"filesystem":{"mounts":[{"source":"/a","dest":"/a","dest":"/b","mode":"ro"}]}}`, "filesystem.mounts[0].dest", policy.ErrDuplicateField},
		{"duplicate object", `{"limits":{},"limits":{}}`, "limits", policy.ErrDuplicateField},
		{"duplicate env variable", `{"env":{"A":"1","A":"2"}}`, "env", policy.ErrDuplicateField},
		// Wrong types and values.
		{"document null", `null`, "", nil},
		{"document array", `[]`, "", nil},
		{"deep nesting in a field", deep, "name", nil},
		{"deep nesting document", strings.Repeat("[", 100000), "", nil},
		{"limits string", `{"limits":"strict"}`, "limits", nil},
		{"network array", `{"network":["a.com"]}`, "network", nil},
		{"memory bool", `{"limits":{"memory":false}}`, "limits.memory", nil},
		{"memory object", `{"limits":{"memory":{}}}`, "limits.memory", nil},
		{"memory out of range", `{"limits":{"memory":9223372036854775808}}`, "limits.memory", nil},
		{"memory most negative", `{"limits":{"memory":-9223372036854775808}}`, "limits.memory", nil},
		{"memory exponent", `{"limits":{"memory":1e9}}`, "limits.memory", nil},
		{"memory escaped garbage", `{"limits":{"memory":"\u0031X"}}`, "limits.memory", nil},
		{"max_output null", `{"limits":{"max_output":null}}`, "limits.max_output", nil},
		{"tmp_size null", `{"filesystem":{"tmp_size":null}}`, "filesystem.tmp_size", nil},
		{"work_size null", `{"filesystem":{"work_size":null}}`, "filesystem.work_size", nil},
		{"timeout null", `{"limits":{"timeout":null}}`, "limits.timeout", nil},
		{"cpu_time object", `{"limits":{"cpu_time":{}}}`, "limits.cpu_time", nil},
		{"timeout overflow", `{"limits":{"timeout":"9999999999h"}}`, "limits.timeout", nil},
		{"timeout no unit", `{"limits":{"timeout":"30"}}`, "limits.timeout", nil},
		{"cpus huge", `{"limits":{"cpus":1e400}}`, "limits.cpus", nil},
		{"cpus underflow", `{"limits":{"cpus":1e-400}}`, "limits.cpus", nil},
		{"cpus negative zero", `{"limits":{"cpus":-0}}`, "limits.cpus", nil},
		{"pids exponent", `{"limits":{"pids":1e2}}`, "limits.pids", nil},
		{"pids negative zero", `{"limits":{"pids":-0}}`, "limits.pids", nil},
		{"pids string", `{"limits":{"pids":"64"}}`, "limits.pids", nil},
		{"pids zero fraction", `{"limits":{"pids":0.0}}`, "limits.pids", nil},
		{"seccomp number", `{"seccomp":1}`, "seccomp", nil},
		{"extends number", `{"extends":5}`, "extends", nil},
		{"seccomp_allow element null", `{"seccomp_allow":["read",null]}`, "seccomp_allow[1]", nil},
		{"seccomp_allow object", `{"seccomp_allow":{"read":true}}`, "seccomp_allow", nil},
		{"allow element number", `{"network":{"mode":"allowlist","allow":["a.com",443]}}`, "network.allow[1]", nil},
		{"mount not object", `{"filesystem":{"mounts":["/a:/a"]}}`, "filesystem.mounts[0]", nil},
		{"mount null", `{"filesystem":{"mounts":[null]}}`, "filesystem.mounts[0]", nil},
		{"mount mode bool", `{"filesystem":{"mounts":[{"source":"/a","dest":"/a","mode":true}]}}`, "filesystem.mounts[0].mode", nil},
		{"env value array", `{"env":{"A":[1]}}`, "env", nil},
		{"env value object", `{"env":{"A":{}}}`, "env", nil},
		{"env value NUL", `{"env":{"A":"x\u0000"}}`, "env", nil},
		{"allow NUL", `{"network":{"mode":"allowlist","allow":["a.com\u0000b"]}}`, "network.allow[0]", nil},
		{"seccomp_allow control character", `{"seccomp_allow":["read","\u0007"]}`, "seccomp_allow[1]", nil},
		{"cpus denormal", `{"limits":{"cpus":5e-324}}`, "limits.cpus", nil},
		{"cpus 1e300", `{"limits":{"cpus":1e300}}`, "limits.cpus", nil},
		{"memory hex float string", `{"limits":{"memory":"0x1p20"}}`, "limits.memory", nil},
		{"memory exponent string", `{"limits":{"memory":"1e3K"}}`, "limits.memory", nil},
		{"memory plus string", `{"limits":{"memory":"+1M"}}`, "limits.memory", nil},
		{"env value null", `{"env":{"A":null}}`, "env", nil},
		{"env array", `{"env":["A=1"]}`, "env", nil},
		{"inherit_env string", `{"inherit_env":"true"}`, "inherit_env", nil},
		{"user_namespace number", `{"user_namespace":1}`, "user_namespace", nil},
		{"best_effort string", `{"best_effort":"no"}`, "best_effort", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.ParseJSON([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("error %q does not wrap %q", err, tt.class)
			}
			for _, c := range []error{policy.ErrSyntax, policy.ErrUnknownField, policy.ErrDuplicateField} {
				if c != tt.class && errors.Is(err, c) {
					t.Errorf("error %q wraps %q, want only %v", err, c, tt.class)
				}
			}
			checkDecodeField(t, err, tt.field, tt.class)
		})
	}
}

// checkDecodeField asserts how err names field: unknown keys are named in
// the message only (they are not fields of the schema); every other error
// inside a field carries a FieldError for exactly that field.
func checkDecodeField(t *testing.T, err error, field string, class error) {
	t.Helper()
	var fe *policy.FieldError
	hasField := errors.As(err, &fe)
	switch {
	case class == policy.ErrUnknownField:
		if !strings.Contains(err.Error(), strconv.Quote(field)) || hasField {
			t.Errorf("error %q: want the path %q in the message and no FieldError", err, field)
		}
	case field == "":
		if hasField {
			t.Errorf("error %q names field %q, want none", err, fe.Field)
		}
	case !hasField || fe.Field != field:
		t.Errorf("error %q: want a FieldError for %q", err, field)
	case !strings.Contains(err.Error(), field):
		t.Errorf("error %q does not name %q", err, field)
	}
}

// TestParseJSONStrings checks that every escape decodes to what RFC 8259
// says, in keys and values, and that valid UTF-8 passes through unchanged.
func TestParseJSONStrings(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, "plain"},
		{`\"\\\/\b\f\n\r\t`, "\"\\/\b\f\n\r\t"},
		{`\u0041\u00e9\u20ac`, "Aé€"},
		{`\u00E9\u20AC`, "é€"},
		{`\ud83d\ude00`, "😀"},
		{`x\uD83D\uDE00y`, "x😀y"},
		{"raw é € 😀 \u007f", "raw é € 😀 \u007f"},
		{`mixed é\tand \u00e9`, "mixed é\tand é"},
		{``, ""},
	}
	for _, tt := range tests {
		in := `{"env":{"V":"` + tt.in + `","K\u0045Y":"1"}}`
		p, err := policy.ParseJSON([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := p.Env["V"]; got != tt.want {
			t.Errorf("%s: got %q, want %q", in, got, tt.want)
		}
		if p.Env["KEY"] != "1" {
			t.Errorf("%s: escaped key not decoded: %q", in, p.Env)
		}
	}
	// \u0000 decodes to NUL; validation rejects it in environment values
	// (TestParseJSONErrors), so it is checked in a field that takes it.
	p, err := policy.ParseJSON([]byte(`{"name":"a\u0000b"}`))
	if err != nil || p.Name != "a\x00b" {
		t.Errorf("\\u0000: got %q, %v; want \"a\\x00b\"", p.Name, err)
	}
}

// TestParseJSONNull pins the meaning of null: an absent field for every
// object, list, string and boolean field (as encoding/json treated pointer
// fields); an error for sizes and durations (tested in
// TestParseJSONErrors).
func TestParseJSONNull(t *testing.T) {
	for _, in := range []string{
		`{"limits":null}`, `{"filesystem":null}`, `{"network":null}`, `{"env":null}`,
		`{"seccomp_allow":null}`, `{"name":null}`, `{"seccomp":null}`, `{"extends":null}`,
		`{"inherit_env":null,"workdir":null,"hostname":null,"user_namespace":null,"best_effort":null}`,
		`{"limits":{"cpus":null,"pids":null}}`, `{"filesystem":{"read_only_root":null,"mounts":null}}`,
	} {
		p, err := policy.ParseJSON([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(p, policy.Strict()) {
			t.Errorf("%s: got %+v, want strict unchanged", in, p)
		}
	}
}

// TestParseJSONEmptyLists checks that [] and {} are values, not absences:
// they replace the base's lists with empty ones, as encoding/json did.
func TestParseJSONEmptyLists(t *testing.T) {
	p, err := policy.ParseJSON([]byte(`{"extends":"strict","filesystem":{"mounts":[]},"env":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Filesystem.Mounts == nil || len(p.Filesystem.Mounts) != 0 || p.Env == nil || len(p.Env) != 0 {
		t.Fatalf("mounts %#v env %#v, want empty and non-nil", p.Filesystem.Mounts, p.Env)
	}
	_, err = policy.ParseJSON([]byte(`{"seccomp_allow":[]}`))
	checkFieldErr(t, err, "seccomp_allow")
}

// TestParseJSONNoAllocs checks that a file made only of well-known values
// decodes without allocating: the seccomp profile, network mode, preset
// name, sizes and durations are interned or parsed in place.
func TestParseJSONNoAllocs(t *testing.T) {
	in := []byte(`{"extends":"basic","name":"strict","seccomp":"strict","filesystem":{"read_only_root":true,"tmp_size":"64M"},` +
		`"network":{"mode":"off"},"limits":{"memory":"512M","cpus":0.5,"pids":64,"timeout":"30s","cpu_time":"500ms","max_output":1048576}}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := policy.ParseJSON(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseJSON allocated %v times, want 0", allocs)
	}
}

// TestParseJSONSharesNoInput checks that a decoded policy does not alias
// the input buffer: changing the buffer afterwards changes nothing.
func TestParseJSONSharesNoInput(t *testing.T) {
	in := []byte(`{"name":"mine","hostname":"box","env":{"A":"v"},"seccomp_allow":["read"],` +
		`"filesystem":{"mounts":[{"source":"/src","dest":"/dst","mode":"rw"}]},"network":{"allow":["a.com"]}}`)
	p, err := policy.ParseJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	want := p.Clone()
	for i := range in {
		if in[i] >= 'a' && in[i] <= 'z' {
			in[i] = 'z'
		}
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy changed with its input:\n got %+v\nwant %+v", p, want)
	}
}

// validCorpus is a set of valid policy files in many shapes: every one must
// decode to exactly what the reference decoder (encoding/json) gives.
var validCorpus = []string{
	`{}`,
	` { } `,
	`{"extends":"minimal"}`, `{"extends":"basic"}`, `{"extends":"strict"}`, `{"extends":" Basic "}`,
	`{"extends":"none","seccomp":"off","network":{"mode":"on"}}`,
	`{"env":{"P":8080,"R":1.5E+3,"N":-0,"Z":0.10,"T":true,"F":false,"H":123456789012345678901234567890e-999}}`,
	string(benchJSON),
	`{"name":"mine","seccomp":"basic","filesystem":{"read_only_root":false,"tmp_size":"64M",
		"mounts":[{"source":"/data","dest":"/in","mode":"ro"},{"mode":"rw","dest":"/out","source":"/out"}]},
		"network":{"mode":"allowlist","allow":["pypi.org","files.pythonhosted.org:443"]},
		"limits":{"memory":"256M","cpus":0.5,"pids":32,"timeout":"1m30s","cpu_time":"10s","max_output":"64KiB"},
		"env":{"A":"1","B":"","C\u00e9":"\u00e9\ud83d\ude00\n"},"inherit_env":true,"workdir":"/work/src","hostname":"box",
		"user_namespace":true,"best_effort":false}`,
	"{\r\n\t\"limits\" :\t{ \"memory\" : 1073741824 , \"pids\" : 9223372036854775807 }\r\n}\n",
	`{"limits":{"cpus":2.5e-1,"memory":"1.5G","timeout":"1.5s","cpu_time":"2h45m","max_output":"1 MiB"}}`,
	`{"limits":{"cpus":1E1,"timeout":"250\u00b5s","cpu_time":"3000000000ns"}}`,
	`{"limits":{"timeout":"+5s","max_output":4096}}`,
	`{"filesystem":{"tmp_size":0}}`, `{"filesystem":{"tmp_size":"0"}}`, `{"filesystem":{}}`, `{"limits":{}}`,
	`{"seccomp_allow":["read","write","exit_group"]}`,
	`{"seccomp":"custom","seccomp_allow":["read"]}`,
	`{"seccomp":"strict","seccomp_allow":[]}`,
	`{"network":{"allow":["a.com","*.b.com","c.com:8443"]}}`,
	`{"extends":"minimal","network":{"mode":"off","allow":[]}}`,
	`{"extends":"basic","filesystem":{"mounts":[]},"env":{}}`,
	`{"name":null,"limits":null,"env":null,"network":null,"filesystem":{"mounts":null}}`,
	`{"workdir":"/w\/x","hostname":"h\u0031"}`,
	`{"env":{"PATH":"/usr/bin:/bin","Q":"\"quoted\" \\ back"}}`,
}

func TestParseJSONMatchesReference(t *testing.T) {
	for _, in := range validCorpus {
		want, err := refParseJSON([]byte(in))
		if err != nil {
			t.Fatalf("reference rejects corpus entry %s: %v", in, err)
		}
		got, err := policy.ParseJSON([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %#v\n want %#v", in, got, want)
		}
	}
}

// checkAgainstReference asserts the differential property between the
// decoder and encoding/json: the decoder is stricter (it may reject what
// the reference accepts) but whatever it accepts decodes identically.
func checkAgainstReference(t *testing.T, data []byte) {
	got, err := policy.ParseJSON(data)
	if err != nil {
		return
	}
	want, refErr := refParseJSON(data)
	if refErr != nil {
		t.Fatalf("ParseJSON accepts %q, encoding/json rejects it: %v", data, refErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got  %#v\n want %#v", data, got, want)
	}
}

// FuzzDuration compares the decoder's durations with time.ParseDuration.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"30s", "1m30s", "500ms", "2h", "1.5s", "0s", "9223372036s", "9999999999h",
		"250µs", "250μs", "1us", "5ns", "-1s", "+1s", "30", "", "s", "01s", "1ss", "999999999999999999ns", "1000000000000000000ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		js, _ := json.Marshal(s)
		var back string
		if json.Unmarshal(js, &back) != nil || back != s {
			return // not representable unchanged (invalid UTF-8)
		}
		p, err := policy.ParseJSON([]byte(`{"limits":{"timeout":` + string(js) + `}}`))
		want, werr := time.ParseDuration(s)
		switch {
		case werr == nil && want > 0:
			if err != nil || time.Duration(p.Limits.Timeout) != want {
				t.Fatalf("%q: got %v, %v; want %v", s, time.Duration(p.Limits.Timeout), err, want)
			}
		case err == nil:
			t.Fatalf("%q: accepted as %v; time.ParseDuration: %v, %v", s, time.Duration(p.Limits.Timeout), want, werr)
		}
	})
}

// FuzzParseSizeReference compares ParseSize with the reference below for
// ASCII input (the reference also folded non-ASCII letters into units).
// ParseSize is stricter (decimal digits only, whole bytes, exact integers),
// so the property is one-way: what ParseSize accepts the reference accepts
// with the same value, wherever float64 holds that value exactly.
func FuzzParseSizeReference(f *testing.F) {
	for _, s := range []string{"512M", "1g", "64KiB", "64kib", "2TB", "100B", "1IB", "KIB", "B", "1e3B", "1EB",
		" 1.5 G ", "0x10K", "Inf", "nanM", "-1M", "99999999T", "1_0K", "1kIb", "1 i B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return
			}
		}
		got, err := policy.ParseSize(s)
		if err != nil || got > 1<<53 {
			return
		}
		want, werr := refParseSize(s)
		if werr != nil || got != want {
			t.Fatalf("ParseSize(%q) = %d, %v; reference %d, %v", s, got, err, want, werr)
		}
	})
}

func BenchmarkPolicyDecodeJSONFull(b *testing.B) {
	data := []byte(validCorpus[8])
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		p, err := policy.ParseJSON(data)
		if err != nil {
			b.Fatal(err)
		}
		sink = p
	}
}

func BenchmarkPolicyDecodeJSONReference(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p, err := refParseJSON(benchJSON)
		if err != nil {
			b.Fatal(err)
		}
		sink = p
	}
}

// The reference decoder: encoding/json with DisallowUnknownFields into a
// struct of pointers, applied over the base preset. It is what ParseJSON
// did before it had its own decoder, kept here only to test against.

type refFile struct {
	Extends      string                     `json:"extends"`
	Name         *string                    `json:"name"`
	Seccomp      *string                    `json:"seccomp"`
	SeccompAllow []string                   `json:"seccomp_allow"`
	Filesystem   *refFilesystem             `json:"filesystem"`
	Network      *policy.Network            `json:"network"`
	Limits       *refLimits                 `json:"limits"`
	Env          map[string]json.RawMessage `json:"env"`
	InheritEnv   *bool                      `json:"inherit_env"`
	Workdir      *string                    `json:"workdir"`
	Hostname     *string                    `json:"hostname"`
	UserNS       *bool                      `json:"user_namespace"`
	BestEffort   *bool                      `json:"best_effort"`
}

type refFilesystem struct {
	ReadOnlyRoot *bool           `json:"read_only_root"`
	Mounts       []policy.Mount  `json:"mounts"`
	TmpSize      json.RawMessage `json:"tmp_size"`
	WorkSize     json.RawMessage `json:"work_size"`
}

type refLimits struct {
	Memory    json.RawMessage `json:"memory"`
	CPUs      *float64        `json:"cpus"`
	Pids      *int64          `json:"pids"`
	Timeout   json.RawMessage `json:"timeout"`
	CPUTime   json.RawMessage `json:"cpu_time"`
	MaxOutput json.RawMessage `json:"max_output"`
}

func refParseJSON(data []byte) (policy.Policy, error) {
	var f refFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return policy.Policy{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return policy.Policy{}, errors.New("trailing data")
	}
	return f.apply()
}

func (f *refFile) apply() (policy.Policy, error) {
	var p policy.Policy
	switch f.Extends {
	case "":
		p = policy.Strict()
	case "none":
	default:
		var err error
		if p, err = policy.Preset(f.Extends); err != nil {
			return p, err
		}
	}
	refSet(&p.Name, f.Name)
	if f.Seccomp != nil {
		seccomp, err := policy.ParseSeccomp(*f.Seccomp)
		if err != nil {
			return p, err
		}
		p.Seccomp, p.SeccompAllow = seccomp, nil
	}
	if f.SeccompAllow != nil {
		p.SeccompAllow = f.SeccompAllow
		if f.Seccomp == nil {
			p.Seccomp = policy.SeccompCustom
		}
	}
	if fs := f.Filesystem; fs != nil {
		refSet(&p.Filesystem.ReadOnlyRoot, fs.ReadOnlyRoot)
		if fs.Mounts != nil {
			p.Filesystem.Mounts = fs.Mounts
		}
		if err := refValue(fs.TmpSize, &p.Filesystem.TmpSize, false); err != nil {
			return p, err
		}
		if err := refValue(fs.WorkSize, &p.Filesystem.WorkSize, false); err != nil {
			return p, err
		}
	}
	if f.Network != nil {
		p.Network = *f.Network
		if p.Network.Mode == 0 && len(p.Network.Allow) > 0 {
			p.Network.Mode = policy.NetworkAllowlist
		}
	}
	if l := f.Limits; l != nil {
		if (l.CPUs != nil && *l.CPUs <= 0) || (l.Pids != nil && *l.Pids <= 0) {
			return p, errors.New("limit not positive")
		}
		refSet(&p.Limits.CPUs, l.CPUs)
		refSet(&p.Limits.Pids, l.Pids)
		for _, err := range []error{
			refValue(l.Memory, &p.Limits.Memory, true), refValue(l.MaxOutput, &p.Limits.MaxOutput, true),
			refValue(l.Timeout, &p.Limits.Timeout, true), refValue(l.CPUTime, &p.Limits.CPUTime, true),
		} {
			if err != nil {
				return p, err
			}
		}
	}
	if f.Env != nil {
		p.Env = make(map[string]string, len(f.Env))
		for k, raw := range f.Env {
			v, err := refEnvValue(raw)
			if err != nil {
				return p, err
			}
			p.Env[k] = v
		}
	}
	refSet(&p.InheritEnv, f.InheritEnv)
	refSet(&p.Workdir, f.Workdir)
	refSet(&p.Hostname, f.Hostname)
	refSet(&p.UserNamespace, f.UserNS)
	refSet(&p.BestEffort, f.BestEffort)
	return p, p.Validate()
}

// refValue decodes a raw size or duration into dst when present.
func refValue[T policy.Size | policy.Duration](raw json.RawMessage, dst *T, positive bool) error {
	if raw == nil {
		return nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if positive && v <= 0 {
		return fmt.Errorf("%v not positive", v)
	}
	*dst = v
	return nil
}

func refSet[T any](dst, src *T) {
	if src != nil {
		*dst = *src
	}
}

// refParseSize is ParseSize as it was before it stopped upper-casing its
// input, for the differential fuzz test.
func refParseSize(s string) (policy.Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	upper, mult := strings.ToUpper(t), int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	} {
		if strings.HasSuffix(upper, suf.s) {
			upper, mult = strings.TrimSpace(strings.TrimSuffix(upper, suf.s)), suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(upper, 64)
	if err != nil {
		return 0, err
	}
	v := n * float64(mult)
	if math.IsNaN(v) || v < 0 || v > 1<<62 {
		return 0, errors.New("out of range")
	}
	return policy.Size(v), nil
}

// refEnvValue is the reference reading of an environment value: a string,
// or a number or boolean as the text written.
func refEnvValue(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return string(raw), nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return string(raw), nil
	}
	return "", fmt.Errorf("env value %s is not a string, number or boolean", raw)
}

// TestEnvScalarsAsText: numbers and booleans in env are the text written,
// in JSON and in YAML.
func TestEnvScalarsAsText(t *testing.T) {
	want := map[string]string{"PORT": "8080", "RATE": "1.5e3", "NEG": "-2", "DEBUG": "true", "QUIET": "false", "NAME": "x"}
	p, err := policy.ParseJSON([]byte(`{"env":{"PORT":8080,"RATE":1.5e3,"NEG":-2,"DEBUG":true,"QUIET":false,"NAME":"x"}}`))
	if err != nil || !reflect.DeepEqual(p.Env, want) {
		t.Fatalf("json: %v %v", p.Env, err)
	}
	p, err = policy.ParseYAML([]byte("env:\n  PORT: 8080\n  RATE: 1.5e3\n  NEG: -2\n  DEBUG: true\n  QUIET: false\n  NAME: x\n"))
	if err != nil || !reflect.DeepEqual(p.Env, want) {
		t.Fatalf("yaml: %v %v", p.Env, err)
	}
	// In YAML every number or boolean spelling is kept as written.
	yamlWant := map[string]string{"MODE": "0755", "ZIP": "01234", "HEX": "0x1F", "BIG": "1_000", "HALF": ".5",
		"PLUS": "+1", "YES": "True", "INF": ".inf"}
	p, err = policy.ParseYAML([]byte("env:\n  MODE: 0755\n  ZIP: 01234\n  HEX: 0x1F\n  BIG: 1_000\n  HALF: .5\n  PLUS: +1\n  YES: True\n  INF: .inf\n"))
	if err != nil || !reflect.DeepEqual(p.Env, yamlWant) {
		t.Fatalf("yaml spellings: %v %v", p.Env, err)
	}
	// Outside env, the same spellings are still refused.
	if _, err := policy.ParseYAML([]byte("limits:\n  pids: 0x10\n")); err == nil {
		t.Fatal("pids: 0x10 accepted")
	}
}
