package policy_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/kavach-sandbox/kavach/policy"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// checkParsed asserts the contract of a parse: an error wraps ErrInvalid,
// and a success is a valid policy.
func checkParsed(t *testing.T, p policy.Policy, err error) {
	if err != nil {
		if !errors.Is(err, policy.ErrInvalid) {
			t.Fatalf("error %q does not wrap ErrInvalid", err)
		}
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
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.ParseJSON(data)
		checkParsed(t, p, err)
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
	f.Fuzz(func(t *testing.T, s string) {
		v, err := policy.ParseSize(s)
		if err == nil && v < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative size without an error", s, v)
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
