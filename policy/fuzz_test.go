package policy_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/kavach-sandbox/kavach/policy"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// maxFuzzErrorLen bounds any error message: each echoed value is clipped to
// 64 bytes before quoting (at most 4 bytes per byte), and a path has few
// segments.
const maxFuzzErrorLen = 2048

// checkParsed asserts the contract of a parse: an error wraps ErrInvalid
// and prints without control characters in bounded space, and a success is
// a valid policy.
func checkParsed(t *testing.T, p policy.Policy, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, policy.ErrInvalid) {
			t.Fatalf("error %q does not wrap ErrInvalid", err)
		}
		checkErrorText(t, err.Error(), maxFuzzErrorLen)
		return
	}
	if verr := p.Validate(); verr != nil {
		t.Fatalf("parsed policy does not validate: %v", verr)
	}
}

var fuzzSeeds = []string{
	``, `{}`, `null`, `[]`, `{"extends":"minimal"}`,
	`{"limits":{"memory":"512M","cpus":0.5,"pids":64,"timeout":"30s"}}`,
	`{"limits":{"memory":"NaN"}}`, `{"limits":{"memory":"1e400"}}`, `{"limits":{"memory":-1}}`,
	`{"filesystem":{"mounts":[{"source":"/a","dest":"/a","mode":"ro"}]}}`,
	`{"network":{"mode":"allowlist","allow":["a.com"]}}`, `{"seccomp_allow":["read"]}`,
	"limits:\n  memory: 1G\n  timeout: 1m\n", "- 1\n", "a: &a [*a]\n", "{1: 2}", "seccomp: [",
	"seccomp: off\n---\nseccomp: strict\n", "env: {D: 2024-01-01, B: !!binary /w==}\n", "limits: {pids: 1e2, cpus: .inf}\n",
	"limits:\n  <<: &l {pids: 8}\n  memory: *l\n", "name: !x y\n", "env: {? [a] : b, 1: c}\n",
	// Nasty JSON: deep nesting, huge numbers, bad escapes, lone surrogates,
	// duplicate and wrong-case keys, nulls, raw control bytes, invalid UTF-8.
	`{"name":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, `[[[[[[[[[[[[[[[[[[[[[[[[`,
	`{"limits":{"pids":99999999999999999999999999999999}}`, `{"limits":{"cpus":1e999999999}}`,
	`{"limits":{"cpus":-1e-999999999}}`, `{"limits":{"memory":-9223372036854775808}}`,
	`{"name":"\q"}`, `{"name":"\u12"}`, `{"name":"\ud800"}`, `{"name":"\udc00\ud800"}`, `{"name":"\ud83d\ude00"}`,
	`{"seccomp":"off","seccomp":"strict"}`, `{"Seccomp":"off"}`, `{"limits":null}`, `{"limits":{"memory":null}}`,
	`{"env":{"A":null,"A":"1"}}`, "{\"name\":\"\x01\"}", "{\"name\":\"\xff\xfe\"}", "\xef\xbb\xbf{}",
	`{"filesystem":{"mounts":[{"source":"/a","dest":"/a","mode":"ro"},{}]}}`, `{"limits":{"timeout":"9999999999h"}}`,
	`{"limits":{"timeout":"1.5s","cpu_time":"250\u00b5s"}}`, `{"network":{"allow":["a.com","A.COM"]}}`,
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range append(fuzzSeeds, validCorpus...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.ParseJSON(data)
		checkParsed(t, p, err)
		checkAgainstReference(t, data)
	})
}

func FuzzParseYAML(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.ParseYAML(data)
		checkParsed(t, p, err)
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1G", "64KiB", "NaN", "-0", "1e30", "0x10", "Inf"} {
		f.Add(s)
	}
	for _, s := range []string{"1.5G", "0.0009765625K", "9223372036854775807", "8388607T", "1 MiB", "0.3K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := policy.ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative size without an error", s, v)
		}
		if back, err := policy.ParseSize(v.String()); err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, but its String %q parses to %d, %v", s, v, v.String(), back, err)
		}
	})
}

var benchJSON = []byte(`{"extends":"basic","seccomp":"strict","filesystem":{"read_only_root":true},` +
	`"network":{"mode":"off"},"limits":{"memory":"512M","cpus":1,"pids":64,"timeout":"30s"}}`)

var sink policy.Policy

func BenchmarkPolicyDecodeJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p, err := policy.ParseJSON(benchJSON)
		if err != nil {
			b.Fatal(err)
		}
		sink = p
	}
}

func BenchmarkPolicyDecodeYAML(b *testing.B) {
	data := []byte("extends: basic\nseccomp: strict\nfilesystem: {read_only_root: true}\nlimits: {memory: 512M, cpus: 1, pids: 64, timeout: 30s}\n")
	b.ReportAllocs()
	for b.Loop() {
		p, err := policy.ParseYAML(data)
		if err != nil {
			b.Fatal(err)
		}
		sink = p
	}
}
