package kavach_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/credential"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/lifecycle"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

func TestMain(m *testing.M) {
	if kavach.Init() {
		return
	}
	os.Exit(m.Run())
}

func TestBuilderFullChain(t *testing.T) {
	cfg, err := kavach.NewConfig().Backend(kavach.GVisor).Policy(policy.Strict()).Seccomp("strict").Network(false).
		Memory(512<<20).CPUs(0.5).Pids(64).Timeout(30*time.Second).Env("K", "V").Workdir("/work").Hostname("box").
		MinScore(60).Build()
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Strict()
	want.Limits.CPUs = 0.5
	want.Env = map[string]string{"K": "V"}
	want.Hostname = "box"
	if cfg.Backend != backend.GVisor || cfg.MinScore != 60 || !reflect.DeepEqual(cfg.Policy, want) {
		t.Fatalf("config = %+v\nwant policy %+v", cfg, want)
	}
}

func TestBuilderDefaults(t *testing.T) {
	cfg, err := kavach.NewConfig().Build()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend != kavach.Process || cfg.MinScore != 0 || !reflect.DeepEqual(cfg.Policy, policy.Strict()) {
		t.Fatalf("default config = %+v", cfg)
	}
}

// TestBuilderOrder: Policy sets the base, every other setter overrides it,
// whatever the call order; the last call of a setter wins.
func TestBuilderOrder(t *testing.T) {
	cfg, err := kavach.NewConfig().Memory(128 << 20).Seccomp("basic").Network(true).Policy(policy.Minimal()).Build()
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policy
	if p.Limits.Memory != 128<<20 || p.Seccomp != policy.SeccompBasic || p.Network.Mode != policy.NetworkOn || p.Name != "minimal" {
		t.Fatalf("Policy after setters undid them: %+v", p)
	}
	cfg, err = kavach.NewConfig().Memory(128 << 20).Memory(256 << 20).Preset("basic").Preset("strict").Build()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Limits.Memory != 256<<20 || cfg.Policy.Name != "strict" {
		t.Fatalf("last call must win: %+v", cfg.Policy)
	}

	// Policy takes a copy: changing the caller's policy later has no effect,
	// and two Builds of one builder do not share memory.
	base := policy.Basic()
	base.Env = map[string]string{"A": "1"}
	b := kavach.NewConfig().Policy(base).Env("B", "2").AllowHosts("a.com").Mount("/srv", "", policy.ReadOnly)
	base.Env["A"] = "changed"
	c1, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := b.Build()
	c1.Policy.Env["B"] = "x"
	c1.Policy.Network.Allow[0] = "x"
	if c2.Policy.Env["A"] != "1" || c2.Policy.Env["B"] != "2" || c2.Policy.Network.Allow[0] != "a.com" ||
		c2.Policy.Filesystem.Mounts[0] != (policy.Mount{Source: "/srv", Dest: "/srv", Mode: "ro"}) {
		t.Fatalf("builds share memory: %+v", c2.Policy)
	}
}

// TestBuilderOverrides pins how setters that touch the same fields combine,
// whatever the order of Policy among them.
func TestBuilderOverrides(t *testing.T) {
	allowBase := policy.Basic()
	allowBase.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"base.com"}}
	tests := []struct {
		name    string
		b       *kavach.Builder
		network policy.Network
		seccomp policy.SeccompProfile
		allow   []string
	}{
		{"hosts on the strict base", kavach.NewConfig().AllowHosts("a.com"),
			policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com"}}, policy.SeccompStrict, nil},
		{"hosts add to the base's allowlist", kavach.NewConfig().AllowHosts("a.com").Policy(allowBase).AllowHosts("b.com"),
			policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"base.com", "a.com", "b.com"}}, policy.SeccompBasic, nil},
		{"network after hosts replaces them", kavach.NewConfig().Policy(allowBase).AllowHosts("a.com").Network(false),
			policy.Network{Mode: policy.NetworkOff}, policy.SeccompBasic, nil},
		{"hosts after network off", kavach.NewConfig().Policy(allowBase).Network(false).AllowHosts("a.com", "b.com"),
			policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"a.com", "b.com"}}, policy.SeccompBasic, nil},
		{"network on", kavach.NewConfig().Network(true),
			policy.Network{Mode: policy.NetworkOn}, policy.SeccompStrict, nil},
		{"allow-list then profile", kavach.NewConfig().SeccompAllow("read", "write").Seccomp("basic"),
			policy.Network{Mode: policy.NetworkOff}, policy.SeccompBasic, nil},
		{"profile then allow-list", kavach.NewConfig().Seccomp("basic").SeccompAllow("read"),
			policy.Network{Mode: policy.NetworkOff}, policy.SeccompCustom, []string{"read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustBuild(t, tt.b)
			p := cfg.Policy
			if !reflect.DeepEqual(p.Network, tt.network) || p.Seccomp != tt.seccomp || !reflect.DeepEqual(p.SeccompAllow, tt.allow) {
				t.Fatalf("network %+v seccomp %s %v", p.Network, p.Seccomp, p.SeccompAllow)
			}
		})
	}
	if allowBase.Network.Allow[0] != "base.com" || len(allowBase.Network.Allow) != 1 {
		t.Fatalf("the caller's base policy changed: %+v", allowBase.Network)
	}
}

// TestBuildOwnsBoundary: the gate policy and the secret bindings of a
// Config are its own, not the caller's or another Build's.
func TestBuildOwnsBoundary(t *testing.T) {
	g := gate.DefaultPolicy()
	g.Allow = []string{"email"}
	hosts := []string{"api.example.com"}
	b := kavach.NewConfig().Gate(g).Secret(credential.NewStore(), credential.Binding{Name: "T", Method: credential.MethodProxy, Hosts: hosts})
	c1 := mustBuild(t, b)
	c2 := mustBuild(t, b)
	c1.Gate.Actions[gate.SeverityCritical] = gate.ActionPass
	c1.Gate.Allow[0] = "x"
	g.Actions[gate.SeverityHigh] = gate.ActionPass
	hosts[0] = "evil.example.com"
	c1.Secrets[0].Hosts[0] = "x"
	if c2.Gate.Actions[gate.SeverityCritical] != gate.ActionBlock || c2.Gate.Actions[gate.SeverityHigh] != gate.ActionQuarantine ||
		c2.Gate.Allow[0] != "email" || c2.Secrets[0].Hosts[0] != "api.example.com" {
		t.Fatalf("configs share the boundary: gate %+v, secrets %+v", c2.Gate, c2.Secrets)
	}
	if c3 := mustBuild(t, b); c3.Secrets[0].Hosts[0] != "api.example.com" || c3.Gate.Actions[gate.SeverityHigh] != gate.ActionQuarantine {
		t.Fatalf("the caller's later edits reached the builder: %+v %+v", c3.Gate, c3.Secrets)
	}
}

func TestBuilderInvalid(t *testing.T) {
	tests := []struct {
		name  string
		b     *kavach.Builder
		field string
	}{
		{"memory -1", kavach.NewConfig().Memory(-1), "memory"},
		{"memory 0", kavach.NewConfig().Memory(0), "memory"},
		{"memory tiny", kavach.NewConfig().Memory(1000), "limits.memory"},
		{"cpus 0", kavach.NewConfig().CPUs(0), "cpus"},
		{"cpus negative", kavach.NewConfig().CPUs(-2), "cpus"},
		{"pids 0", kavach.NewConfig().Pids(0), "pids"},
		{"timeout 0", kavach.NewConfig().Timeout(0), "timeout"},
		{"cpu time", kavach.NewConfig().CPUTime(-time.Second), "cpu_time"},
		{"max output", kavach.NewConfig().MaxOutput(0), "max_output"},
		{"min score 101", kavach.NewConfig().MinScore(101), "min_score"},
		{"min score -1", kavach.NewConfig().MinScore(-1), "min_score"},
		{"bad seccomp", kavach.NewConfig().Seccomp("paranoid"), "seccomp"},
		{"bad backend", kavach.NewConfig().Backend("docker"), "backend"},
		{"bad preset", kavach.NewConfig().Preset("paranoid"), "policy"},
		{"relative workdir", kavach.NewConfig().Workdir("rel"), "workdir"},
		{"relative mount", kavach.NewConfig().Mount("rel", "/x", policy.ReadOnly), "filesystem.mounts[0].source"},
		{"bad hostname", kavach.NewConfig().Hostname("a/b"), "hostname"},
		{"bad env", kavach.NewConfig().Env("A=B", "x"), "env"},
		{"nil hook", kavach.NewConfig().Hook(nil), "hooks"},
		{"negative hook timeout", kavach.NewConfig().HookTimeout(-time.Second), "hook_timeout"},
		{"secret on fd 1", kavach.NewConfig().Secret(credential.NewStore(), credential.Binding{Name: "T", Method: credential.MethodFD, FD: 1}), "secrets[0]"},
		{"secret without a store", kavach.NewConfig().Secret(nil, credential.Binding{Name: "T", Method: credential.MethodEnv, EnvVar: "T"}), "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.b.Build()
			if err == nil {
				t.Fatalf("no error, config %+v", cfg)
			}
			if !errors.Is(err, kavach.ErrConfig) {
				t.Errorf("%v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name the field %q", err, tt.field)
			}
		})
	}
	// Every invalid setter is reported, not only the first.
	_, err := kavach.NewConfig().Memory(-1).Pids(0).Build()
	if err == nil || !strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), "pids") {
		t.Fatalf("two invalid setters: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := kavach.Config{Policy: policy.Basic()}
	if err := c.Validate(); err != nil || c.Backend != kavach.Process {
		t.Fatalf("Validate = %v, backend %q", err, c.Backend)
	}
	for _, c := range []kavach.Config{
		{Backend: "docker", Policy: policy.Strict()},
		{Policy: policy.Strict(), MinScore: 101},
		{Policy: policy.Policy{Name: "half-filled"}}, // no seccomp profile: only a zero policy means strict
	} {
		if err := c.Validate(); !errors.Is(err, kavach.ErrConfig) {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
}

// TestResultJSON checks the keys of SPEC §6 exactly.
func TestResultJSON(t *testing.T) {
	r := kavach.Result{ID: "kv-1", Backend: "noop", Status: kavach.StatusExited, Stdout: "hi\n",
		Score: score.Score{Value: 0},
		Gate:  gate.Report{Verdict: gate.VerdictPass, Findings: []gate.Finding{}, QuarantineID: "q-1"}}
	data, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "backend", "status", "exit_code", "signal", "timed_out", "oom_killed", "stdout", "stderr",
		"stdout_truncated", "stderr_truncated", "duration_ms", "cpu_ms", "max_rss_kb", "score", "gate"}
	if got := sortedKeys(m); !slices.Equal(got, sorted(want)) {
		t.Fatalf("keys = %v\nwant %v", got, sorted(want))
	}
	var sub map[string]json.RawMessage
	_ = json.Unmarshal(m["score"], &sub)
	if got := sortedKeys(sub); !slices.Equal(got, []string{"label", "modifiers", "value"}) {
		t.Fatalf("score keys = %v", got)
	}
	sub = nil
	_ = json.Unmarshal(m["gate"], &sub)
	if got := sortedKeys(sub); !slices.Equal(got, []string{"findings", "quarantine_id", "verdict"}) {
		t.Fatalf("gate keys = %v", got)
	}
	if string(sub["findings"]) != "[]" || string(sub["verdict"]) != `"pass"` {
		t.Fatalf("gate = %s", m["gate"])
	}
	if string(m["stdout"]) != `"hi\n"` || string(m["status"]) != `"exited"` || string(m["exit_code"]) != "0" {
		t.Fatalf("values: %s", data)
	}

	r.Error = "command not found"
	data, _ = json.Marshal(&r)
	m = nil
	_ = json.Unmarshal(data, &m)
	if string(m["error"]) != `"command not found"` || len(m) != len(want)+1 {
		t.Fatalf("with error: %s", data)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		r    kavach.Result
		want int
	}{
		{kavach.Result{Status: kavach.StatusExited}, 0},
		{kavach.Result{Status: kavach.StatusExited, ExitCode: 3}, 3},
		{kavach.Result{Status: kavach.StatusTimeout, TimedOut: true, Signal: 9}, 124},
		{kavach.Result{Status: kavach.StatusOOM, OOMKilled: true, Signal: 9}, 137},
		{kavach.Result{Status: kavach.StatusSignaled, Signal: 15}, 143},
		{kavach.Result{Status: kavach.StatusExited, ExitCode: 1, Gate: gate.Report{Verdict: gate.VerdictBlock}}, 123},
		{kavach.Result{Status: kavach.StatusExited, Gate: gate.Report{Verdict: gate.VerdictQuarantine}}, 123},
		{kavach.Result{Status: kavach.StatusExited, ExitCode: 2, Gate: gate.Report{Verdict: gate.VerdictWarn}}, 2},
	}
	for i, tt := range tests {
		if got := tt.r.ExitStatus(); got != tt.want {
			t.Errorf("%d: ExitStatus(%+v) = %d, want %d", i, tt.r, got, tt.want)
		}
	}
}

func noopConfig(t *testing.T, b *kavach.Builder) kavach.Config {
	t.Helper()
	cfg, err := b.Backend(kavach.Noop).Build()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRunNoop(t *testing.T) {
	cfg := noopConfig(t, kavach.NewConfig())
	res, err := kavach.Run(context.Background(), cfg, []string{"sh", "-c", "exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Status != kavach.StatusExited || res.Backend != "noop" || res.Stdout != "" ||
		res.Score.String() != "0 (minimal)" || len(res.Score.Modifiers()) != 7 || res.ExitStatus() != 0 ||
		!strings.HasPrefix(res.ID, "kv-") {
		t.Fatalf("noop result = %+v", res)
	}
	if _, err := kavach.Run(context.Background(), cfg, nil); !errors.Is(err, kavach.ErrConfig) {
		t.Fatalf("empty argv: %v", err)
	}
}

func TestMinScore(t *testing.T) {
	cfg := noopConfig(t, kavach.NewConfig().MinScore(1))
	_, err := kavach.Run(context.Background(), cfg, []string{"true"})
	if !errors.Is(err, kavach.ErrScoreTooLow) {
		t.Fatalf("noop with min score 1: %v", err)
	}
	// gvisor+strict declares 83: a minimum above it refuses before the
	// backend's availability matters, one below it does not.
	s, err := kavach.Score(kavach.GVisor, policy.Strict())
	if err != nil || s.String() != "83 (hardened)" {
		t.Fatalf("Score(gvisor, strict) = %s, %v", s, err)
	}
	if _, err := kavach.New(context.Background(), mustBuild(t, kavach.NewConfig().Backend(kavach.Firecracker).MinScore(100))); errors.Is(err, kavach.ErrScoreTooLow) || err == nil {
		t.Fatalf("firecracker (unavailable here) with min score 100: %v", err)
	}
}

func mustBuild(t *testing.T, b *kavach.Builder) kavach.Config {
	t.Helper()
	cfg, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestScoreAndBackends(t *testing.T) {
	for _, tt := range []struct {
		b    backend.Name
		p    policy.Policy
		want string
	}{
		{kavach.Noop, policy.Strict(), "0 (minimal)"},
		{kavach.GVisor, policy.Strict(), "83 (hardened)"},
		{kavach.Firecracker, policy.Strict(), "100 (fortress)"},
		{kavach.SGX, policy.Minimal(), "80 (hardened)"},
	} {
		s, err := kavach.Score(tt.b, tt.p)
		if err != nil || s.String() != tt.want {
			t.Errorf("Score(%s, %s) = %s, %v; want %s", tt.b, tt.p.Name, s, err, tt.want)
		}
	}
	list := kavach.Backends(context.Background())
	if len(list) != 8 {
		t.Fatalf("Backends = %+v", list)
	}
	for i, n := range backend.Names() {
		info, _ := backend.InfoOf(n)
		b := list[i]
		if b.Name != string(n) || b.BaseScore != info.Base || b.Reason == "" {
			t.Errorf("Backends[%d] = %+v", i, b)
		}
		if n == kavach.Noop && !b.Available {
			t.Errorf("noop unavailable: %+v", b)
		}
		if !b.Available && b.Reason == "" {
			t.Errorf("%s unavailable without a reason", n)
		}
	}
}

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) hook(e lifecycle.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := string(e.Type)
	if e.Type == lifecycle.EventTransition || e.Type == lifecycle.EventError {
		s += ":" + e.From + ">" + e.To
	}
	if e.SandboxID == "" || e.Backend != "noop" || e.Time.IsZero() {
		s += "!missing-fields"
	}
	r.events = append(r.events, s)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, " ")
}

func TestNoopLifecycle(t *testing.T) {
	ctx := context.Background()
	var rec recorder
	cfg := noopConfig(t, kavach.NewConfig().Hook(rec.hook).HookTimeout(time.Second))
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sb.State() != lifecycle.Created || sb.Backend() != kavach.Noop || sb.Score().Value != 0 || !strings.HasPrefix(sb.ID(), "kv-") {
		t.Fatalf("new sandbox: %s %s %s", sb.State(), sb.Backend(), sb.Score())
	}
	if _, err := sb.Exec(ctx, []string{"true"}); !errors.Is(err, lifecycle.ErrWrongState) {
		t.Fatalf("Exec in created: %v", err)
	}
	if err := sb.Pause(ctx); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("Pause in created: %v", err)
	}
	step := func(name string, f func(context.Context) error, want lifecycle.State) {
		t.Helper()
		if err := f(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sb.State() != want {
			t.Fatalf("after %s: state %s, want %s", name, sb.State(), want)
		}
	}
	step("Start", sb.Start, lifecycle.Running)
	if res, err := sb.Exec(ctx, []string{"echo", "hi"}); err != nil || res.ExitCode != 0 || res.ID != sb.ID() {
		t.Fatalf("Exec in running: %+v, %v", res, err)
	}
	step("Pause", sb.Pause, lifecycle.Paused)
	if _, err := sb.Exec(ctx, []string{"true"}); !errors.Is(err, lifecycle.ErrWrongState) {
		t.Fatalf("Exec in paused: %v", err)
	}
	step("Resume", sb.Resume, lifecycle.Running)
	step("Stop", sb.Stop, lifecycle.Stopped)
	if _, err := sb.Exec(ctx, []string{"true"}); !errors.Is(err, lifecycle.ErrWrongState) {
		t.Fatalf("Exec in stopped: %v", err)
	}
	if err := sb.Start(ctx); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("Start in stopped: %v", err)
	}
	step("Destroy", sb.Destroy, lifecycle.Destroyed)
	step("Destroy again", sb.Destroy, lifecycle.Destroyed)
	if _, err := sb.Exec(ctx, []string{"true"}); !errors.Is(err, lifecycle.ErrWrongState) {
		t.Fatalf("Exec in destroyed: %v", err)
	}

	want := "transition:>created error:created> error:created>paused transition:created>running exec.start gate.verdict exec.end " +
		"transition:running>paused error:paused> transition:paused>running transition:running>stopped error:stopped> error:stopped>running " +
		"transition:stopped>destroyed error:destroyed>"
	if got := rec.String(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

func TestGlobalHook(t *testing.T) {
	var rec recorder
	kavach.AddHook(rec.hook)
	cfg := noopConfig(t, kavach.NewConfig())
	if _, err := kavach.Run(context.Background(), cfg, []string{"true"}); err != nil {
		t.Fatal(err)
	}
	// Other tests' sandboxes may also report here; look for one complete run.
	got := rec.String()
	if !strings.Contains(got, "transition:>created transition:created>running exec.start gate.verdict exec.end transition:running>destroyed") {
		t.Fatalf("global hook saw %s", got)
	}
}

func TestRunProcess(t *testing.T) {
	for _, b := range kavach.Backends(context.Background()) {
		if b.Name == "process" && !b.Available {
			t.Skipf("process backend unavailable: %s", b.Reason)
		}
	}
	cfg := mustBuild(t, kavach.NewConfig().Backend(kavach.Process).MinScore(63))
	res, err := kavach.Run(context.Background(), cfg, []string{"sh", "-c", "echo out; echo err >&2; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "out\n" || res.Stderr != "err\n" || res.ExitCode != 3 || res.Status != kavach.StatusExited ||
		res.Score.String() != "63 (standard)" || res.ExitStatus() != 3 {
		t.Fatalf("result = %+v", res)
	}
	cfg = mustBuild(t, kavach.NewConfig().Backend(kavach.Process).MinScore(64))
	if _, err := kavach.Run(context.Background(), cfg, []string{"true"}); !errors.Is(err, kavach.ErrScoreTooLow) {
		t.Fatalf("process+strict with min score 64: %v", err)
	}
}

var sinkCfg kavach.Config

func BenchmarkConfigBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := kavach.NewConfig().Backend(kavach.GVisor).Seccomp("strict").Network(false).Memory(512 << 20).Pids(64).Build()
		if err != nil {
			b.Fatal(err)
		}
		sinkCfg = cfg
	}
}

// BenchmarkConfigBuildFull builds a chain with every scalar setter and Env
// (Env makes the allocations: the builder's list and the policy's map).
func BenchmarkConfigBuildFull(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := kavach.NewConfig().Backend(kavach.GVisor).Policy(policy.Strict()).Seccomp("strict").Network(false).
			Memory(512<<20).CPUs(0.5).Pids(64).Timeout(30*time.Second).Env("K", "V").Workdir("/work").Hostname("box").
			MinScore(60).Build()
		if err != nil {
			b.Fatal(err)
		}
		sinkCfg = cfg
	}
}

func TestStopKillsRunningExec(t *testing.T) {
	cfg, err := kavach.NewConfig().Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		t.Skipf("process backend: %v", err)
	}
	defer sb.Destroy(ctx)
	if err := sb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := sb.Exec(ctx, []string{"sleep", "30"})
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := sb.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, kavach.ErrStopped) {
			t.Fatalf("exec after Stop: %v, want ErrStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the running exec")
	}
	if _, err := sb.Exec(ctx, []string{"true"}); err == nil {
		t.Fatal("exec allowed after Stop")
	}
}

// TestCreateCancelledReturns: a context that ends while the sandbox is
// being built must make New return, not hang.
func TestCreateCancelledReturns(t *testing.T) {
	cfg, err := kavach.NewConfig().Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 8 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if sb, err := kavach.New(ctx, cfg); err == nil {
				sb.Destroy(context.Background())
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("New with a %v deadline hangs", d)
		}
		cancel()
	}
}
