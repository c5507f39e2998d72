package policy_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kavach-sandbox/kavach/policy"
)

// TestParseYAMLScalars pins how YAML scalars reach the decoder: strings and
// timestamps as their source text, numbers only when their text is a JSON
// number, booleans and nulls by the YAML 1.2 core schema.
func TestParseYAMLScalars(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(p policy.Policy) bool
	}{
		{"date stays text", "env: {D: 2024-01-01}\n", func(p policy.Policy) bool { return p.Env["D"] == "2024-01-01" }},
		{"timestamp stays text", "env: {T: 2001-12-14t21:59:43.10-05:00}\n", func(p policy.Policy) bool {
			return p.Env["T"] == "2001-12-14t21:59:43.10-05:00"
		}},
		{"explicit timestamp tag", "env: {T: !!timestamp 2024-01-01}\n", func(p policy.Policy) bool { return p.Env["T"] == "2024-01-01" }},
		{"explicit str tag", "env: {N: !!str 0x10}\n", func(p policy.Policy) bool { return p.Env["N"] == "0x10" }},
		{"quoted number", "env: {N: \"1e2\", B: 'true'}\n", func(p policy.Policy) bool { return p.Env["N"] == "1e2" && p.Env["B"] == "true" }},
		{"escapes", "env: {E: \"a\\tb\\\"c\\\\d\\u00e9\\x01\"}\n", func(p policy.Policy) bool { return p.Env["E"] == "a\tb\"c\\dé\x01" }},
		{"block scalar", "env:\n  S: |\n    line1\n    line2\n", func(p policy.Policy) bool { return p.Env["S"] == "line1\nline2\n" }},
		{"numbers", "limits: {memory: 2097152, cpus: 2.5e-1, pids: 9223372036854775807}\n", func(p policy.Policy) bool {
			return p.Limits.Memory == 2<<20 && p.Limits.CPUs == 0.25 && p.Limits.Pids == 1<<63-1
		}},
		{"bool spellings", "inherit_env: True\nbest_effort: FALSE\nuser_namespace: true\n", func(p policy.Policy) bool {
			return p.InheritEnv && !p.BestEffort && p.UserNamespace
		}},
		{"yes is a string", "env: {Y: yes, O: on}\n", func(p policy.Policy) bool { return p.Env["Y"] == "yes" && p.Env["O"] == "on" }},
		{"null spellings", "name: ~\nseccomp: null\nlimits: {cpus: Null}\n", func(p policy.Policy) bool {
			return reflect.DeepEqual(p, policy.Strict())
		}},
		{"null document", "---\n", func(p policy.Policy) bool { return reflect.DeepEqual(p, policy.Strict()) }},
		{"comment only", "# nothing\n", func(p policy.Policy) bool { return reflect.DeepEqual(p, policy.Strict()) }},
		{"document markers", "---\nseccomp: off\n...\n", func(p policy.Policy) bool { return p.Seccomp == policy.SeccompOff }},
		{"alias of a scalar", "limits: {memory: &m 256M, max_output: *m}\n", func(p policy.Policy) bool {
			return p.Limits.Memory == 256<<20 && p.Limits.MaxOutput == 256<<20
		}},
		{"alias of a mapping", "filesystem:\n  mounts:\n    - &m {source: /a, dest: /a, mode: ro}\n    - {source: /b, dest: /b, mode: rw}\nenv: &e {A: '1'}\n", func(p policy.Policy) bool {
			return len(p.Filesystem.Mounts) == 2 && p.Env["A"] == "1"
		}},
		{"alias as key", "env: {&k K: v}\nhostname: *k\n", func(p policy.Policy) bool { return p.Env["K"] == "v" && p.Hostname == "K" }},
		{"quoted keys", "\"seccomp\": off\n'limits': {\"pids\": 5}\n", func(p policy.Policy) bool {
			return p.Seccomp == policy.SeccompOff && p.Limits.Pids == 5
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.ParseYAML([]byte(tt.in))
			if err != nil {
				t.Fatalf("%q: %v", tt.in, err)
			}
			if !tt.check(p) {
				t.Fatalf("%q: got %+v", tt.in, p)
			}
		})
	}
}

// TestParseYAMLErrors checks that every YAML construct the policy cannot
// take is an error that wraps ErrInvalid and names the field exactly
// (FieldError.Field), with msg in the message.
func TestParseYAMLErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string // "" when the error is not inside a field, "*" for any field
		msg   string
	}{
		// Several documents.
		{"second document", "seccomp: off\n---\nseccomp: strict\n", "", "document"},
		{"empty second document", "seccomp: off\n---\n", "", "document"},
		{"broken second document", "seccomp: off\n---\n[\n", "", "yaml"},
		{"not a mapping", "- a\n- b\n", "", "mapping"},
		{"scalar document", "strict\n", "", "mapping"},
		// Numbers must be written as JSON numbers.
		{"pids exponent", "limits: {pids: 1e2}\n", "limits.pids", "integer"},
		{"pids float", "limits: {pids: 64.0}\n", "limits.pids", "integer"},
		{"memory hex", "limits: {memory: 0x100000}\n", "limits.memory", "decimal number"},
		{"memory octal", "limits: {memory: 0o4000000}\n", "limits.memory", "decimal number"},
		{"memory binary", "limits: {memory: 0b100000000000000000000}\n", "limits.memory", "decimal number"},
		{"memory underscores", "limits: {memory: 1_048_576}\n", "limits.memory", "decimal number"},
		{"memory YAML 1.1 octal", "limits: {memory: 04000000}\n", "limits.memory", "decimal number"},
		{"cpus inf", "limits: {cpus: .inf}\n", "limits.cpus", "decimal number"},
		{"cpus minus inf", "limits: {cpus: -.Inf}\n", "limits.cpus", "decimal number"},
		{"cpus nan", "limits: {cpus: .NaN}\n", "limits.cpus", "decimal number"},
		{"cpus plus sign", "limits: {cpus: +1}\n", "limits.cpus", "decimal number"},
		{"cpus bare fraction", "limits: {cpus: .5}\n", "limits.cpus", "decimal number"},
		{"explicit int tag on text", "limits: {pids: !!int many}\n", "limits.pids", "decimal number"},
		// Booleans and nulls by explicit tag must be spelled as such.
		{"explicit bool tag on text", "inherit_env: !!bool maybe\n", "inherit_env", "true or false"},
		{"explicit null tag on text", "name: !!null x\n", "name", "null"},
		// Tags with no JSON form.
		{"binary", "env: {A: !!binary /w==}\n", "env.A", "!!binary"},
		{"custom tag", "name: !custom x\n", "name", "!custom"},
		{"custom tag on mapping", "limits: !custom {pids: 1}\n", "limits", "!custom"},
		{"set", "seccomp_allow: !!set {read: null}\n", "seccomp_allow", "!!set"},
		// Keys must be strings.
		{"int key", "env: {1: a}\n", "env.1", "string"},
		{"int key at top", "{1: 2}\n", "1", "string"},
		{"bool key", "env: {true: a}\n", "env.true", "string"},
		{"null key", "env: {~: a}\n", "env.~", "string"},
		{"date key", "env: {2024-01-01: a}\n", "env.2024-01-01", "string"},
		{"mapping key", "env: {? {a: 1} : b}\n", "env", "string"},
		{"key needing quotes", "env: {\"a.b\": !!binary AA==}\n", `env."a.b"`, "!!binary"},
		// Merge keys and aliases.
		{"merge key", "limits:\n  <<: {pids: 8}\n", "limits.<<", "merge"},
		{"merge key at top", "<<: {seccomp: off}\n", "<<", "merge"},
		{"cyclic alias", "seccomp_allow: &a [*a]\n", "seccomp_allow[0]", "alias"},
		{"alias bomb", aliasBomb(), "*", "alias"},
		{"deep nesting", "name: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n", "name" + strings.Repeat("[0]", 15), "nested"},
		// Duplicate keys, also when spelled differently.
		{"duplicate key", "seccomp: off\nseccomp: strict\n", "seccomp", "more than once"},
		{"duplicate by quoting", "seccomp: off\n\"seccomp\": strict\n", "seccomp", "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.ParseYAML([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			var fe *policy.FieldError
			switch hasField := errors.As(err, &fe); {
			case tt.field == "*":
			case tt.field == "" && hasField:
				t.Errorf("error %q names field %q, want none", err, fe.Field)
			case tt.field != "" && (!hasField || fe.Field != tt.field):
				t.Errorf("error %q: want a FieldError for %q", err, tt.field)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// aliasBomb is a document whose aliases expand to 10^9 scalars.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		b.WriteString(strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", "))
		b.WriteString("]\n")
	}
	b.WriteString("name: *a9\n")
	return b.String()
}

// TestParseYAMLMatchesJSON checks that a YAML file and its JSON spelling
// decode to the same policy.
func TestParseYAMLMatchesJSON(t *testing.T) {
	yml := `
extends: basic
name: agent
seccomp_allow: [read, write]
filesystem: {read_only_root: true, tmp_size: 64M, mounts: [{source: /data, dest: /in, mode: ro}]}
network: {allow: ["a.com", "*.b.com", "c.com:443"]}
limits: {memory: 1G, cpus: 0.5, pids: 32, timeout: 1m30s, cpu_time: 10s, max_output: 1048576}
env: {A: "1", EMPTY: "", Q: "\"x\""}
inherit_env: true
workdir: /work/src
hostname: box
user_namespace: false
best_effort: true
`
	js := `{"extends":"basic","name":"agent","seccomp_allow":["read","write"],
"filesystem":{"read_only_root":true,"tmp_size":"64M","mounts":[{"source":"/data","dest":"/in","mode":"ro"}]},
"network":{"allow":["a.com","*.b.com","c.com:443"]},
"limits":{"memory":"1G","cpus":0.5,"pids":32,"timeout":"1m30s","cpu_time":"10s","max_output":1048576},
"env":{"A":"1","EMPTY":"","Q":"\"x\""},"inherit_env":true,"workdir":"/work/src","hostname":"box",
"user_namespace":false,"best_effort":true}`
	got, err := policy.ParseYAML([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	want, err := policy.ParseJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("YAML and JSON differ:\n yaml %+v\n json %+v", got, want)
	}
}

// BenchmarkPolicyDecodeYAMLAliasBomb measures how long a document whose
// aliases would expand to 10^9 scalars takes to be refused.
func BenchmarkPolicyDecodeYAMLAliasBomb(b *testing.B) {
	data := []byte(aliasBomb())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.ParseYAML(data); err == nil {
			b.Fatal("alias bomb accepted")
		}
	}
}
