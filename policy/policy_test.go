package policy_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/policy"
)

// TestPresets checks every preset field by field against the table of
// SPEC §4.
func TestPresets(t *testing.T) {
	limits := policy.Limits{Timeout: policy.Duration(30 * time.Second), MaxOutput: 1 << 20}
	strictLimits := limits
	strictLimits.Memory = 512 << 20
	strictLimits.CPUs = 1.0
	strictLimits.Pids = 64
	tests := []struct {
		name string
		got  policy.Policy
		want policy.Policy
	}{
		{"minimal", policy.Minimal(), policy.Policy{
			Name: "minimal", Seccomp: policy.SeccompOff, Network: policy.Network{Mode: policy.NetworkOn}, Limits: limits, Workdir: "/work",
		}},
		{"basic", policy.Basic(), policy.Policy{
			Name: "basic", Seccomp: policy.SeccompBasic, Network: policy.Network{Mode: policy.NetworkOff}, Limits: limits, Workdir: "/work",
		}},
		{"strict", policy.Strict(), policy.Policy{
			Name: "strict", Seccomp: policy.SeccompStrict, Filesystem: policy.Filesystem{ReadOnlyRoot: true},
			Network: policy.Network{Mode: policy.NetworkOff}, Limits: strictLimits, Workdir: "/work",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Fatalf("preset %s:\n got %+v\nwant %+v", tt.name, tt.got, tt.want)
			}
			if err := tt.got.Validate(); err != nil {
				t.Fatalf("preset %s does not validate: %v", tt.name, err)
			}
			byName, err := policy.Preset(" " + strings.ToUpper(tt.name) + " ")
			if err != nil {
				t.Fatalf("Preset(%q): %v", tt.name, err)
			}
			if !reflect.DeepEqual(byName, tt.want) {
				t.Fatalf("Preset(%q) = %+v, want %+v", tt.name, byName, tt.want)
			}
		})
	}
	st, ba, mi := policy.Strict(), policy.Basic(), policy.Minimal()
	if !st.HasLimits() || ba.HasLimits() || mi.HasLimits() {
		t.Fatal("HasLimits: only strict has memory/CPU and pids limits")
	}
	if got := policy.Presets; !reflect.DeepEqual(got, []string{"minimal", "basic", "strict"}) {
		t.Fatalf("Presets = %v", got)
	}
}

func TestPresetUnknown(t *testing.T) {
	_, err := policy.Preset("paranoid")
	if !errors.Is(err, policy.ErrUnknownPreset) {
		t.Fatalf("err = %v, want ErrUnknownPreset", err)
	}
	if !strings.Contains(err.Error(), `"paranoid"`) {
		t.Fatalf("error %q does not name the preset", err)
	}
}

func TestClone(t *testing.T) {
	p := policy.Strict()
	p.Env = map[string]string{"A": "1"}
	p.Filesystem.Mounts = []policy.Mount{{Source: "/a", Dest: "/a", Mode: "ro"}}
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com"}}
	p.SeccompAllow = []string{"read"}
	q := p.Clone()
	q.Env["A"] = "2"
	q.Filesystem.Mounts[0].Dest = "/b"
	q.Network.Allow[0] = "evil.com"
	q.SeccompAllow[0] = "write"
	if p.Env["A"] != "1" || p.Filesystem.Mounts[0].Dest != "/a" || p.Network.Allow[0] != "example.com" || p.SeccompAllow[0] != "read" {
		t.Fatalf("Clone shares memory with the original: %+v", p)
	}
}

func TestEffectiveDefaults(t *testing.T) {
	var p policy.Policy
	if p.EffectiveTimeout() != 30*time.Second || p.EffectiveMaxOutput() != 1<<20 {
		t.Fatalf("defaults: %v %d", p.EffectiveTimeout(), p.EffectiveMaxOutput())
	}
	p.Limits.Timeout = policy.Duration(time.Second)
	p.Limits.MaxOutput = 10
	if p.EffectiveTimeout() != time.Second || p.EffectiveMaxOutput() != 10 {
		t.Fatalf("set: %v %d", p.EffectiveTimeout(), p.EffectiveMaxOutput())
	}
}

func TestValidateStruct(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*policy.Policy)
		field string // "" means valid
	}{
		{"strict", func(*policy.Policy) {}, ""},
		{"bad seccomp", func(p *policy.Policy) { p.Seccomp = policy.SeccompCustom + 1 }, "seccomp"},
		{"empty seccomp", func(p *policy.Policy) { p.Seccomp = 0 }, "seccomp"},
		{"allow without custom", func(p *policy.Policy) { p.SeccompAllow = []string{"read"} }, "seccomp_allow"},
		{"custom without list", func(p *policy.Policy) { p.Seccomp = policy.SeccompCustom }, "seccomp_allow"},
		{"custom bad syscall", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"read", "a b"} }, "seccomp_allow[1]"},
		{"custom ok", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"read", "write"} }, ""},
		{"negative memory", func(p *policy.Policy) { p.Limits.Memory = -1 }, "limits.memory"},
		{"tiny memory", func(p *policy.Policy) { p.Limits.Memory = 4096 }, "limits.memory"},
		{"negative cpus", func(p *policy.Policy) { p.Limits.CPUs = -1 }, "limits.cpus"},
		{"NaN cpus", func(p *policy.Policy) { p.Limits.CPUs = math.NaN() }, "limits.cpus"},
		{"Inf cpus", func(p *policy.Policy) { p.Limits.CPUs = math.Inf(1) }, "limits.cpus"},
		{"negative pids", func(p *policy.Policy) { p.Limits.Pids = -1 }, "limits.pids"},
		{"max_output above the ceiling", func(p *policy.Policy) { p.Limits.MaxOutput = policy.MaxMaxOutput + 1 }, "limits.max_output"},
		{"negative timeout", func(p *policy.Policy) { p.Limits.Timeout = -1 }, "limits.timeout"},
		{"negative cpu_time", func(p *policy.Policy) { p.Limits.CPUTime = -1 }, "limits.cpu_time"},
		{"negative max_output", func(p *policy.Policy) { p.Limits.MaxOutput = -1 }, "limits.max_output"},
		{"negative tmp_size", func(p *policy.Policy) { p.Filesystem.TmpSize = -1 }, "filesystem.tmp_size"},
		{"negative work_size", func(p *policy.Policy) { p.Filesystem.WorkSize = -1 }, "filesystem.work_size"},
		{"bad network mode", func(p *policy.Policy) { p.Network.Mode = policy.NetworkAllowlist + 1 }, "network.mode"},
		{"unset network mode", func(p *policy.Policy) { p.Network.Mode = 0 }, "network.mode"},
		{"allow with off", func(p *policy.Policy) { p.Network.Allow = []string{"a.com"} }, "network.allow"},
		{"allowlist empty", func(p *policy.Policy) { p.Network = policy.Network{Mode: policy.NetworkAllowlist} }, "network.allow"},
		{"allowlist bad host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com", "user@b.com"}}
		}, "network.allow[1]"},
		{"allowlist dup host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com", "A.com"}}
		}, "network.allow[1]"},
		{"allowlist ok", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com", "*.b.com", "c.com:443"}}
		}, ""},
		{"relative mount source", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "data", Dest: "/data", Mode: "ro"}}
		}, "filesystem.mounts[0].source"},
		{"relative mount dest", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/data", Dest: "data", Mode: "ro"}}
		}, "filesystem.mounts[0].dest"},
		{"empty mount dest", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/data", Mode: "ro"}}
		}, "filesystem.mounts[0].dest"},
		{"bad mount mode", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/data", Dest: "/data", Mode: "rwx"}}
		}, "filesystem.mounts[0].mode"},
		{"mount over root", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/data", Dest: "/", Mode: "ro"}}
		}, "filesystem.mounts[0].dest"},
		{"mount over proc", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/data", Dest: "/proc/", Mode: "ro"}}
		}, "filesystem.mounts[0].dest"},
		{"duplicate mount dest", func(p *policy.Policy) {
			p.Filesystem.Mounts = []policy.Mount{{Source: "/a", Dest: "/data", Mode: "ro"}, {Source: "/b", Dest: "/data/", Mode: "rw"}}
		}, "filesystem.mounts[1].dest"},
		{"relative workdir", func(p *policy.Policy) { p.Workdir = "work" }, "workdir"},
		{"bad hostname", func(p *policy.Policy) { p.Hostname = "a b" }, "hostname"},
		{"long hostname", func(p *policy.Policy) { p.Hostname = strings.Repeat("h", 65) }, "hostname"},
		{"NUL in hostname", func(p *policy.Policy) { p.Hostname = "box\x00" }, "hostname"},
		{"newline in hostname", func(p *policy.Policy) { p.Hostname = "box\nevil" }, "hostname"},
		{"bad env", func(p *policy.Policy) { p.Env = map[string]string{"A=B": "c"} }, "env"},
		{"NUL in env value", func(p *policy.Policy) { p.Env = map[string]string{"A": "x\x00y"} }, "env"},
		{"control character in env value", func(p *policy.Policy) { p.Env = map[string]string{"A": "x\ty\x1b"} }, ""},
		{"NUL in syscall", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"read\x00write"} }, "seccomp_allow[0]"},
		{"newline in syscall", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"read", "write\n"} }, "seccomp_allow[1]"},
		{"DEL in syscall", func(p *policy.Policy) { p.Seccomp, p.SeccompAllow = policy.SeccompCustom, []string{"re\x7fad"} }, "seccomp_allow[0]"},
		{"NUL in host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com\x00.evil.com"}}
		}, "network.allow[0]"},
		{"escape in host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com", "b.com\x1b[2J"}}
		}, "network.allow[1]"},
		{"DEL in host", func(p *policy.Policy) {
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a\x7f.com"}}
		}, "network.allow[0]"},
		{"cpus smallest float", func(p *policy.Policy) { p.Limits.CPUs = 5e-324 }, "limits.cpus"},
		{"cpus below 1%", func(p *policy.Policy) { p.Limits.CPUs = 0.0099 }, "limits.cpus"},
		{"cpus 1%", func(p *policy.Policy) { p.Limits.CPUs = 0.01 }, ""},
		{"cpus max", func(p *policy.Policy) { p.Limits.CPUs = 65536 }, ""},
		{"cpus above max", func(p *policy.Policy) { p.Limits.CPUs = 65536.5 }, "limits.cpus"},
		{"cpus huge", func(p *policy.Policy) { p.Limits.CPUs = 1e300 }, "limits.cpus"},
		{"cpus unset", func(p *policy.Policy) { p.Limits.CPUs = 0 }, ""},
		{"empty env key", func(p *policy.Policy) { p.Env = map[string]string{"": "c"} }, "env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Strict()
			tt.mod(&p)
			err := p.Validate()
			checkFieldErr(t, err, tt.field)
		})
	}
}

// checkFieldErr asserts that err is nil when field is "", and otherwise an
// ErrInvalid whose FieldError names exactly field.
func checkFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one naming %q", field)
	}
	if !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Fatalf("error %q does not name the field %q", err, field)
	}
	var fe *policy.FieldError
	if errors.As(err, &fe) && fe.Field != field {
		t.Fatalf("FieldError.Field = %q, want %q (error %q)", fe.Field, field, err)
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string // error must name it; "" means success
		check func(t *testing.T, p policy.Policy)
	}{
		{"empty object is strict", `{}`, "", func(t *testing.T, p policy.Policy) {
			if !reflect.DeepEqual(p, policy.Strict()) {
				t.Fatalf("got %+v, want strict", p)
			}
		}},
		{"full", `{
			"name": "mine", "seccomp": "basic",
			"filesystem": {"read_only_root": false, "tmp_size": "64M", "work_size": "2G",
				"mounts": [{"source": "/data", "dest": "/in", "mode": "ro"}, {"source": "/out", "dest": "/out", "mode": "rw"}]},
			"network": {"mode": "allowlist", "allow": ["pypi.org", "files.pythonhosted.org:443"]},
			"limits": {"memory": "256M", "cpus": 0.5, "pids": 32, "timeout": "1m30s", "cpu_time": "10s", "max_output": "64KiB"},
			"env": {"A": "1"}, "inherit_env": true, "workdir": "/work/src", "hostname": "box", "best_effort": true
		}`, "", func(t *testing.T, p policy.Policy) {
			want := policy.Policy{
				Name: "mine", Seccomp: policy.SeccompBasic,
				Filesystem: policy.Filesystem{TmpSize: 64 << 20, WorkSize: 2 << 30, Mounts: []policy.Mount{
					{Source: "/data", Dest: "/in", Mode: "ro"}, {Source: "/out", Dest: "/out", Mode: "rw"}}},
				Network: policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"pypi.org", "files.pythonhosted.org:443"}},
				Limits: policy.Limits{Memory: 256 << 20, CPUs: 0.5, Pids: 32, Timeout: policy.Duration(90 * time.Second),
					CPUTime: policy.Duration(10 * time.Second), MaxOutput: 64 << 10},
				Env: map[string]string{"A": "1"}, InheritEnv: true, Workdir: "/work/src", Hostname: "box", BestEffort: true,
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("got  %+v\nwant %+v", p, want)
			}
		}},
		{"memory bytes", `{"limits": {"memory": 1073741824}}`, "", func(t *testing.T, p policy.Policy) {
			if p.Limits.Memory != 1<<30 {
				t.Fatalf("memory = %d", p.Limits.Memory)
			}
		}},
		{"memory 1G", `{"limits": {"memory": "1G"}}`, "", func(t *testing.T, p policy.Policy) {
			if p.Limits.Memory != 1<<30 {
				t.Fatalf("memory = %d", p.Limits.Memory)
			}
		}},
		{"memory 512M", `{"limits": {"memory": "512M"}}`, "", func(t *testing.T, p policy.Policy) {
			if p.Limits.Memory != 512<<20 {
				t.Fatalf("memory = %d", p.Limits.Memory)
			}
		}},
		{"extends minimal", `{"extends": "minimal", "limits": {"pids": 10}}`, "", func(t *testing.T, p policy.Policy) {
			want := policy.Minimal()
			want.Limits.Pids = 10
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("got %+v, want %+v", p, want)
			}
		}},
		{"extends basic keeps name", `{"extends": "basic"}`, "", func(t *testing.T, p policy.Policy) {
			if !reflect.DeepEqual(p, policy.Basic()) {
				t.Fatalf("got %+v, want basic", p)
			}
		}},
		{"seccomp_allow implies custom", `{"seccomp_allow": ["read", "write"]}`, "", func(t *testing.T, p policy.Policy) {
			if p.Seccomp != policy.SeccompCustom || !reflect.DeepEqual(p.SeccompAllow, []string{"read", "write"}) {
				t.Fatalf("seccomp = %q %v", p.Seccomp, p.SeccompAllow)
			}
		}},
		{"allow implies allowlist", `{"network": {"allow": ["a.com"]}}`, "", func(t *testing.T, p policy.Policy) {
			if p.Network.Mode != policy.NetworkAllowlist {
				t.Fatalf("mode = %q", p.Network.Mode)
			}
		}},
		{"unknown field", `{"seccomp": "strict", "sekcomp": "x"}`, "sekcomp", nil},
		{"unknown nested field", `{"limits": {"memroy": "1G"}}`, "memroy", nil},
		{"unknown mount field", `{"filesystem": {"mounts": [{"source": "/a", "dest": "/a", "mode": "ro", "opts": 1}]}}`, "opts", nil},
		{"unknown extends", `{"extends": "paranoid"}`, "extends", nil},
		{"negative memory", `{"limits": {"memory": -1}}`, "limits.memory", nil},
		{"negative memory string", `{"limits": {"memory": "-512M"}}`, "limits.memory", nil},
		{"zero memory", `{"limits": {"memory": 0}}`, "limits.memory", nil},
		{"garbage memory", `{"limits": {"memory": "lots"}}`, "limits.memory", nil},
		{"float memory", `{"limits": {"memory": 1.5}}`, "limits.memory", nil},
		{"null memory", `{"limits": {"memory": null}}`, "limits.memory", nil},
		{"bool memory", `{"limits": {"memory": true}}`, "limits.memory", nil},
		{"cpus 0", `{"limits": {"cpus": 0}}`, "limits.cpus", nil},
		{"cpus negative", `{"limits": {"cpus": -0.5}}`, "limits.cpus", nil},
		{"cpus string", `{"limits": {"cpus": "1"}}`, "limits.cpus", nil},
		{"pids 0", `{"limits": {"pids": 0}}`, "limits.pids", nil},
		{"pids negative", `{"limits": {"pids": -3}}`, "limits.pids", nil},
		{"pids fraction", `{"limits": {"pids": 1.5}}`, "limits.pids", nil},
		{"pids overflow", `{"limits": {"pids": 99999999999999999999}}`, "limits.pids", nil},
		{"timeout bare number", `{"limits": {"timeout": 30}}`, "limits.timeout", nil},
		{"timeout bad syntax", `{"limits": {"timeout": "30 seconds"}}`, "limits.timeout", nil},
		{"timeout negative", `{"limits": {"timeout": "-1s"}}`, "limits.timeout", nil},
		{"timeout zero", `{"limits": {"timeout": "0s"}}`, "limits.timeout", nil},
		{"cpu_time bare number", `{"limits": {"cpu_time": 5}}`, "limits.cpu_time", nil},
		{"max_output zero", `{"limits": {"max_output": "0"}}`, "limits.max_output", nil},
		{"tmp_size garbage", `{"filesystem": {"tmp_size": "big"}}`, "filesystem.tmp_size", nil},
		{"bad seccomp", `{"seccomp": "paranoid"}`, "seccomp", nil},
		{"bad network mode", `{"network": {"mode": "maybe"}}`, "network.mode", nil},
		{"relative mount", `{"filesystem": {"mounts": [{"source": "data", "dest": "/data", "mode": "ro"}]}}`, "filesystem.mounts[0].source", nil},
		{"duplicate mounts", `{"filesystem": {"mounts": [{"source": "/a", "dest": "/d", "mode": "ro"}, {"source": "/b", "dest": "/d", "mode": "ro"}]}}`, "filesystem.mounts[1].dest", nil},
		{"relative workdir", `{"workdir": "src"}`, "workdir", nil},
		{"wrong type name", `{"name": 5}`, "name", nil},
		{"wrong type read_only_root", `{"filesystem": {"read_only_root": "yes"}}`, "filesystem.read_only_root", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.ParseJSON([]byte(tt.in))
			checkFieldErr(t, err, tt.field)
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestParseJSONSyntax(t *testing.T) {
	for _, in := range []string{``, `[]`, `"strict"`, `{`, `{} {}`, `{}x`, `null x`, `{"limits": []}`} {
		if _, err := policy.ParseJSON([]byte(in)); err == nil {
			t.Errorf("ParseJSON(%q): no error", in)
		} else if !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("ParseJSON(%q): %v does not wrap ErrInvalid", in, err)
		}
	}
}

func TestParseYAML(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string
		check func(t *testing.T, p policy.Policy)
	}{
		{"empty document is strict", "", "", func(t *testing.T, p policy.Policy) {
			if !reflect.DeepEqual(p, policy.Strict()) {
				t.Fatalf("got %+v", p)
			}
		}},
		{"full", `
extends: basic
name: agent
filesystem:
  read_only_root: true
  mounts:
    - {source: /srv/data, dest: /data, mode: ro}
network:
  mode: allowlist
  allow: [pypi.org]
limits:
  memory: 512M
  cpus: 2
  pids: 100
  timeout: 2m
  max_output: 64KiB
env:
  LANG: C
`, "", func(t *testing.T, p policy.Policy) {
			want := policy.Basic()
			want.Name = "agent"
			want.Filesystem = policy.Filesystem{ReadOnlyRoot: true, Mounts: []policy.Mount{{Source: "/srv/data", Dest: "/data", Mode: "ro"}}}
			want.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"pypi.org"}}
			want.Limits = policy.Limits{Memory: 512 << 20, CPUs: 2, Pids: 100, Timeout: policy.Duration(2 * time.Minute), MaxOutput: 64 << 10}
			want.Env = map[string]string{"LANG": "C"}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("got  %+v\nwant %+v", p, want)
			}
		}},
		{"memory bytes", "limits:\n  memory: 2097152\n", "", func(t *testing.T, p policy.Policy) {
			if p.Limits.Memory != 2<<20 {
				t.Fatalf("memory = %d", p.Limits.Memory)
			}
		}},
		{"unknown field", "seccomp: strict\nnetwrok: {mode: off}\n", "netwrok", nil},
		{"negative memory", "limits: {memory: -1}\n", "limits.memory", nil},
		{"cpus 0", "limits: {cpus: 0}\n", "limits.cpus", nil},
		{"pids 0", "limits: {pids: 0}\n", "limits.pids", nil},
		{"timeout bare number", "limits: {timeout: 30}\n", "limits.timeout", nil},
		{"bad seccomp", "seccomp: paranoid\n", "seccomp", nil},
		{"bad network mode", "network: {mode: sometimes}\n", "network.mode", nil},
		{"duplicate mounts", "filesystem:\n  mounts:\n    - {source: /a, dest: /x, mode: ro}\n    - {source: /b, dest: /x, mode: rw}\n", "filesystem.mounts[1].dest", nil},
		{"relative dest", "filesystem:\n  mounts:\n    - {source: /a, dest: x, mode: ro}\n", "filesystem.mounts[0].dest", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.ParseYAML([]byte(tt.in))
			checkFieldErr(t, err, tt.field)
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
	for _, in := range []string{"- a\n- b\n", "just a string", "a: [", "{1: 2}", "seccomp: strict\nseccomp: off\n", "limits: {memory: .inf}"} {
		if _, err := policy.ParseYAML([]byte(in)); err == nil {
			t.Errorf("ParseYAML(%q): no error", in)
		}
	}
}

func TestLoadAndResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	js := write("agent.json", `{"extends": "basic", "limits": {"memory": "1G"}}`)
	ym := write("tight.yaml", "limits:\n  pids: 8\n")
	yml := write("named.yml", "name: custom\n")
	bad := write("bad.json", `{"limits": {"cpus": 0}}`)

	p, err := policy.Load(js)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "agent" || p.Limits.Memory != 1<<30 || p.Seccomp != policy.SeccompBasic {
		t.Fatalf("json: %+v", p)
	}
	p, err = policy.Load(ym)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "tight" || p.Limits.Pids != 8 {
		t.Fatalf("yaml: %+v", p)
	}
	p, err = policy.Load(yml)
	if err != nil || p.Name != "custom" {
		t.Fatalf("yml: %+v %v", p, err)
	}
	_, err = policy.Load(bad)
	if err == nil || !strings.Contains(err.Error(), "limits.cpus") || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := policy.Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("missing file: no error")
	}

	p, err = policy.Resolve("Strict")
	if err != nil || !reflect.DeepEqual(p, policy.Strict()) {
		t.Fatalf("Resolve(Strict) = %+v, %v", p, err)
	}
	p, err = policy.Resolve(ym)
	if err != nil || p.Limits.Pids != 8 {
		t.Fatalf("Resolve(file) = %+v, %v", p, err)
	}
	_, err = policy.Resolve("nosuchpreset")
	if !errors.Is(err, policy.ErrUnknownPreset) || !strings.Contains(err.Error(), "nosuchpreset") {
		t.Fatalf("Resolve(unknown) = %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want policy.Size
		ok   bool
	}{
		{"512M", 512 << 20, true},
		{"1G", 1 << 30, true},
		{"1g", 1 << 30, true},
		{"1048576", 1 << 20, true},
		{"64KiB", 64 << 10, true},
		{"64kib", 64 << 10, true},
		{"64MB", 64 << 20, true},
		{"2T", 2 << 40, true},
		{"100B", 100, true},
		{" 1.5G ", 3 << 29, true},
		{"512 M", 512 << 20, true},
		{"0", 0, true},
		{"", 0, false},
		{"M", 0, false},
		{"-1M", 0, false},
		{"lots", 0, false},
		{"1X", 0, false},
		{"NaN", 0, false},
		{"nanM", 0, false},
		{"Inf", 0, false},
		{"99999999T", 0, false},
		// Decimal digits only, parsed exactly.
		{"9007199254740993", 9007199254740993, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"99999999999999999999999", 0, false},
		{"8388607T", 8388607 << 40, true},
		{"8388608T", 0, false},
		{"8796093022207M", 8796093022207 << 20, true},
		{"8796093022208M", 0, false},
		{"010M", 10 << 20, true},
		{"0x1p20", 0, false},
		{"0x10", 0, false},
		{"1e3K", 0, false},
		{"1e3", 0, false},
		{"+1M", 0, false},
		{"-0", 0, false},
		{"1_000", 0, false},
		{"1,000", 0, false},
		{"Infinity", 0, false},
		// A fraction needs a unit and must come to whole bytes.
		{"0.5K", 512, true},
		{"1.5M", 3 << 19, true},
		{"1.0009765625K", 1025, true},
		{"0.0009765625K", 1, true},
		{"0.00000095367431640625T", 1 << 20, true},
		{"1.50000000000000000000000000000000000000000000000000G", 3 << 29, true},
		{"1.0B", 1, true},
		{"1.5", 0, false},
		{"1.0", 0, false},
		{"0.3K", 0, false},
		{"1.1G", 0, false},
		{"1.5B", 0, false},
		{"0.00000000000000000000000000000000000000001T", 0, false},
		{"1.", 0, false},
		{"1.K", 0, false},
		{".5M", 0, false},
		{"1..5M", 0, false},
		{"7.9999999999999999999T", 0, false},
		{"8388607.9999999999T", 0, false},
		// Units and spaces.
		{"1 MiB", 1 << 20, true},
		{"1\tK", 1 << 10, true},
		{"1KK", 0, false},
		{"1 M i B", 0, false},
		{"1Mi", 0, false},
		{"1\u00a0M", 0, false},
		{"\u00a01M", 0, false},
	}
	for _, tt := range tests {
		got, err := policy.ParseSize(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", tt.in, got)
		}
	}
}

func TestSizeString(t *testing.T) {
	for in, want := range map[policy.Size]string{0: "0", 1: "1", 1023: "1023", 1024: "1K", 512 << 20: "512M", 1 << 30: "1G", 3 << 40: "3T", 1536: "1536"} {
		if got := in.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(in), got, want)
		}
	}
}

// TestJSONRoundTrip checks that a policy printed as JSON (kavach policy
// show) loads back to the same policy. Absent fields keep the value of the
// base preset (strict unless "extends" names another), so the presets
// without limits need "extends" to round-trip.
func TestJSONRoundTrip(t *testing.T) {
	for _, name := range policy.Presets {
		p, _ := policy.Preset(name)
		p.Limits.CPUTime = policy.Duration(1500 * time.Millisecond)
		p.Filesystem.TmpSize = 1536
		data, err := jsonMarshal(p)
		if err != nil {
			t.Fatal(err)
		}
		data = append([]byte(`{"extends":"`+name+`",`), data[1:]...)
		q, err := policy.ParseJSON(data)
		if err != nil {
			t.Fatalf("%s: reload %s: %v", name, data, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", name, q, p)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d policy.Duration
	if err := d.UnmarshalJSON([]byte(`"1h2m3s"`)); err != nil || time.Duration(d) != time.Hour+2*time.Minute+3*time.Second {
		t.Fatalf("got %v %v", time.Duration(d), err)
	}
	for _, in := range []string{`30`, `"30"`, `"abc"`, `null`, `true`} {
		if err := d.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("Duration.UnmarshalJSON(%s): no error", in)
		}
	}
	b, _ := policy.Duration(90 * time.Second).MarshalJSON()
	if string(b) != `"1m30s"` {
		t.Fatalf("MarshalJSON = %s", b)
	}
}

func TestShownPolicyLoadsBackUnchanged(t *testing.T) {
	for _, p := range []policy.Policy{policy.Minimal(), policy.Basic(), policy.Strict()} {
		b, err := json.Marshal(policy.ToFile(p))
		if err != nil {
			t.Fatal(err)
		}
		got, err := policy.ParseJSON(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.Name, err, b)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("%s: round trip changed the policy:\n got  %+v\n want %+v", p.Name, got, p)
		}
	}
	if _, err := policy.ParseJSON([]byte(`{"extends":"none","network":{"mode":"off"}}`)); err == nil || !strings.Contains(err.Error(), "seccomp") {
		t.Fatalf("extends none without seccomp: %v", err)
	}
}

func BenchmarkParseSize(b *testing.B) {
	for _, s := range []string{"512M", "1.5G", "9007199254740993", "0.00000095367431640625T"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := policy.ParseSize(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestMountOrder(t *testing.T) {
	fs := policy.Filesystem{Mounts: []policy.Mount{
		{Source: "/s/guard", Dest: "/work/proj/guard", Mode: policy.ReadOnly},
		{Source: "/s/x", Dest: "/x", Mode: policy.ReadOnly},
		{Source: "/s/proj", Dest: "/work/proj", Mode: policy.ReadWrite},
		{Source: "/s/work", Dest: "/work", Mode: policy.ReadWrite},
		{Source: "/s/y", Dest: "/y", Mode: policy.ReadOnly},
	}}
	var got []string
	for _, m := range fs.MountOrder() {
		got = append(got, m.Dest)
	}
	if want := "/x /work /y /work/proj /work/proj/guard"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if fs.Mounts[0].Dest != "/work/proj/guard" {
		t.Fatal("MountOrder reordered the policy's own list")
	}
}
