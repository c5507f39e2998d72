package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/policy"
)

// bin is the kavach binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kavach-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "kavach")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

type result struct {
	code           int
	stdout, stderr string
}

func runKavach(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, nil, "", args...)
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

func processAvailable(t *testing.T) {
	t.Helper()
	r := runKavach(t, "backends", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("backends --json: %v", err)
	}
	for _, b := range list {
		if b["name"] == "process" && b["available"] != true {
			t.Skipf("process backend unavailable: %v", b["reason"])
		}
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"score", "-b", "gvisor", "-p", "strict"}, "83 (hardened)"},
		{[]string{"score", "-b", "noop"}, "0 (minimal)"},
		{[]string{"score", "-b", "Firecracker", "--policy", "strict"}, "100 (fortress)"},
		{[]string{"score", "-b", "gvisor", "-p", "minimal"}, "70 (hardened)"},
	}
	for _, tt := range tests {
		r := runKavach(t, tt.args...)
		if r.code != 0 || r.stdout != tt.want+"\n" {
			t.Errorf("kavach %v: %s; want %q", tt.args, r, tt.want)
		}
	}
	r := runKavach(t, "score", "-b", "gvisor", "--json")
	var s struct {
		Value     int
		Label     string
		Modifiers []struct {
			Name    string
			Points  int
			Applied bool
			Reason  string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Value != 83 || s.Label != "hardened" || len(s.Modifiers) != 7 {
		t.Fatalf("score --json: %s (%v)", r, err)
	}
	r = runKavach(t, "score", "-b", "docker")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || !strings.Contains(r.stderr, "docker") {
		t.Fatalf("score -b docker: %s", r)
	}
}

func TestScoreProcess(t *testing.T) {
	processAvailable(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"score"}, "63 (standard)"},
		{[]string{"score", "-p", "basic"}, "56 (standard)"},
		{[]string{"score", "-b", "process", "-p", "minimal"}, "45 (basic)"},
	} {
		if r := runKavach(t, tt.args...); r.code != 0 || r.stdout != tt.want+"\n" {
			t.Errorf("kavach %v: %s; want %q", tt.args, r, tt.want)
		}
	}
}

func TestBackends(t *testing.T) {
	r := runKavach(t, "backends", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	names := []string{"noop", "process", "oci", "wasm", "gvisor", "sgx", "sev", "firecracker"}
	bases := []float64{0, 50, 55, 65, 70, 80, 82, 90}
	if len(list) != 8 {
		t.Fatalf("%d backends: %s", len(list), r.stdout)
	}
	for i, b := range list {
		if len(b) != 4 {
			t.Errorf("backend %d has keys %v, want name, available, base_score, reason", i, b)
		}
		if b["name"] != names[i] || b["base_score"] != bases[i] {
			t.Errorf("backend %d = %v, want %s with base %v", i, b, names[i], bases[i])
		}
		if _, ok := b["available"].(bool); !ok {
			t.Errorf("backend %d: available = %v", i, b["available"])
		}
		if reason, _ := b["reason"].(string); reason == "" {
			t.Errorf("backend %d: empty reason", i)
		}
	}
	if list[0]["available"] != true {
		t.Errorf("noop unavailable: %v", list[0])
	}

	r = runKavach(t, "backends")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 9 || !strings.HasPrefix(lines[0], "BACKEND") || !strings.HasPrefix(lines[1], "noop ") {
		t.Fatalf("backends table: %s", r)
	}
}

func TestPolicyShow(t *testing.T) {
	r := runKavach(t, "policy", "show", "strict")
	if r.code != 0 {
		t.Fatal(r)
	}
	p, err := policy.ParseJSON([]byte(r.stdout))
	if err != nil || !reflect.DeepEqual(p, policy.Strict()) {
		t.Fatalf("policy show strict = %s: %+v, %v", r.stdout, p, err)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(r.stdout), &m)
	limits, _ := m["limits"].(map[string]any)
	if m["seccomp"] != "strict" || limits["memory"] != "512M" || limits["pids"] != float64(64) || limits["timeout"] != "30s" {
		t.Fatalf("policy show strict: %s", r.stdout)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(file, []byte("extends: basic\nlimits: {memory: 1G, pids: 10}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runKavach(t, "policy", "show", file)
	p, err = policy.ParseJSON([]byte(r.stdout))
	if r.code != 0 || err != nil || p.Seccomp != policy.SeccompBasic || p.Limits.Memory != 1<<30 || p.Limits.Pids != 10 {
		t.Fatalf("policy show file: %s (%v)", r, err)
	}
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"limits": {"cpus": 0}}`), 0o600)
	r = runKavach(t, "policy", "show", bad)
	if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || !strings.Contains(r.stderr, "limits.cpus") {
		t.Fatalf("policy show bad file: %s", r)
	}
	r = runKavach(t, "policy", "show", "nosuch")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") {
		t.Fatalf("policy show nosuch: %s", r)
	}
}

func TestErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"run", "--bogus", "--", "true"},
		{"score", "--bogus"},
		{"bogus"},
		{"run", "--memory", "lots", "-b", "noop", "--", "true"},
		{"run", "--cpus", "0", "-b", "noop", "--", "true"},
		{"run", "--pids", "0", "-b", "noop", "--", "true"},
		{"run", "-p", "paranoid", "-b", "noop", "--", "true"},
		{"run", "-b", "docker", "--", "true"},
		{"run", "-b", "noop", "--min-score", "101", "--", "true"},
	} {
		r := runKavach(t, args...)
		if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") {
			t.Errorf("kavach %v: %s; want exit 125 and a \"kavach: \" error", args, r)
		}
	}
	r := runKavach(t, "run", "-b", "sgx", "--", "true") // not implemented: unavailable everywhere
	if r.code != 125 || !strings.Contains(r.stderr, "sgx") || !strings.Contains(r.stderr, "not implemented yet") {
		t.Errorf("run -b sgx: %s", r)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if r := runKavach(t, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "kavach ") {
		t.Errorf("version: %s", r)
	}
	if r := runKavach(t, "run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--min-score") {
		t.Errorf("run --help: %s", r)
	}
}

func TestRunNoop(t *testing.T) {
	r := runKavach(t, "run", "-b", "noop", "--", "true")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("run -b noop -- true: %s", r)
	}
	r = runKavach(t, "run", "-b", "noop", "--json", "--", "sh", "-c", "exit 3")
	var res map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || res["exit_code"] != float64(0) ||
		res["backend"] != "noop" || res["status"] != "exited" {
		t.Fatalf("run -b noop --json: %s", r)
	}
	sc, _ := res["score"].(map[string]any)
	if sc["value"] != float64(0) || sc["label"] != "minimal" {
		t.Fatalf("noop score: %v", sc)
	}
	if r := runKavach(t, "run", "-b", "noop", "--min-score", "1", "--", "true"); r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") {
		t.Fatalf("noop --min-score 1: %s", r)
	}
}

func TestRunProcess(t *testing.T) {
	processAvailable(t)
	t.Run("min-score", func(t *testing.T) {
		r := runKavach(t, "run", "--min-score", "99", "--", "true")
		if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || !strings.Contains(r.stderr, "63") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("exit code", func(t *testing.T) {
		if r := runKavach(t, "run", "--", "sh", "-c", "exit 3"); r.code != 3 {
			t.Fatalf("%s", r)
		}
	})
	t.Run("output", func(t *testing.T) {
		r := runKavach(t, "run", "--", "sh", "-c", "echo out; echo err >&2")
		if r.code != 0 || r.stdout != "out\n" || r.stderr != "err\n" {
			t.Fatalf("%s", r)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		r := runKavach(t, "run", "--timeout", "300ms", "--", "sleep", "5")
		if r.code != 124 || time.Since(start) > 4*time.Second {
			t.Fatalf("%s after %v", r, time.Since(start))
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := runKavach(t, "run", "--", "nosuchcmd")
		if r.code != 127 || !strings.HasPrefix(r.stderr, "kavach: ") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("not executable", func(t *testing.T) {
		if r := runKavach(t, "run", "--", "/etc/hostname"); r.code != 126 {
			t.Fatalf("%s", r)
		}
	})
	t.Run("signal", func(t *testing.T) {
		// The payload is PID 1 of its namespace, which ignores its own
		// signals: kill a child shell instead (sh then exits 128+15).
		if r := runKavach(t, "run", "--", "sh", "-c", `sh -c 'kill -TERM $$'`); r.code != 143 {
			t.Fatalf("%s", r)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runKavach(t, "run", "--json", "--", "sh", "-c", "echo hi")
		var res map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("%s (%v)", r, err)
		}
		want := []string{"id", "backend", "status", "exit_code", "signal", "timed_out", "oom_killed", "stdout", "stderr",
			"stdout_truncated", "stderr_truncated", "duration_ms", "cpu_ms", "max_rss_kb", "score", "gate"}
		for _, k := range want {
			if _, ok := res[k]; !ok {
				t.Errorf("--json lacks %q", k)
			}
		}
		if res["stdout"] != "hi\n" || res["status"] != "exited" || res["backend"] != "process" || res["exit_code"] != float64(0) {
			t.Fatalf("--json: %s", r.stdout)
		}
		if sc, _ := res["score"].(map[string]any); sc["value"] != float64(63) || sc["label"] != "standard" {
			t.Fatalf("--json score: %v", res["score"])
		}
	})
	t.Run("oom", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("python3 not installed")
		}
		args := []string{"run", "--memory", "64M", "--", "python3", "-c", "a=bytearray(400<<20)"}
		if r := runKavach(t, args...); r.code != 137 {
			t.Fatalf("%s", r)
		}
		r := runKavach(t, append([]string{"run", "--json"}, args[1:]...)...)
		var res map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 137 || res["status"] != "oom" || res["oom_killed"] != true {
			t.Fatalf("%s (%v)", r, err)
		}
	})
}

// TestBench runs a short `kavach bench`: every variant, the peers bwrap and
// runc when installed, ratio columns, and no runc bundle left behind.
func TestBench(t *testing.T) {
	processAvailable(t)
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "kavach-bench-runc-*"))
	r := runKavach(t, "bench", "-n", "3", "--duration", "200ms", "--concurrency", "2")
	if r.code != 0 {
		t.Fatalf("bench: %s", r)
	}
	want := []string{"x bare", "x bwrap", "x runc", "bare fork/exec", "new+exec+destroy", "pool claim+exec", "throughput at concurrency 2"}
	for _, peer := range []struct{ bin, row string }{{"bwrap", "bwrap --unshare-all"}, {"runc", "runc run (minimal bundle, no kavach)"}} {
		if _, err := exec.LookPath(peer.bin); err == nil {
			want = append(want, peer.row)
		}
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("bench output lacks %q:\n%s", w, r.stdout)
		}
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "kavach-bench-runc-*")); len(after) > len(before) {
		t.Errorf("runc bundles left behind: %v", after)
	}
}

// TestBenchInterrupted: a bench stopped by SIGINT in the middle of its runs
// leaves no runc bundle and no cgroup of its runc peer behind.
func TestBenchInterrupted(t *testing.T) {
	processAvailable(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed")
	}
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "kavach-bench-runc-*"))
	cmd := exec.Command(bin, "bench", "-n", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // into the interleaved runs
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", fmt.Sprintf("kavach-bench-%d*", cmd.Process.Pid)))
	if len(cgroups) > 0 {
		t.Errorf("cgroups left behind: %v", cgroups)
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), "kavach-bench-runc-*")); len(after) > len(before) {
		t.Errorf("runc bundles left behind: %v", after)
	}
}
