package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backendAvailable skips the test unless `kavach backends` says name runs here.
func backendAvailable(t *testing.T, name string) {
	t.Helper()
	r := runKavach(t, "backends", "--json")
	var list []struct {
		Name      string
		Available bool
		Reason    string
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("backends --json: %v", err)
	}
	for _, b := range list {
		if b.Name == name {
			if !b.Available {
				t.Skipf("%s backend unavailable: %s", name, b.Reason)
			}
			return
		}
	}
	t.Fatalf("no backend %q in %s", name, r.stdout)
}

func TestScanJSONAndRedact(t *testing.T) {
	const warn = "mail alice@example.com now\n"
	r := runEnv(t, nil, warn, "scan", "--json", "-")
	var rep struct {
		Verdict  string
		Findings []struct{ Rule, Severity string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || rep.Verdict != "warn" ||
		len(rep.Findings) != 1 || rep.Findings[0].Rule != "email" {
		t.Fatalf("scan --json: %v (%v)", r, err)
	}

	// Default output unchanged: findings and verdict on stdout, nothing else.
	r = runEnv(t, nil, warn, "scan")
	if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "low\temail\tstdin\toffset 5\tlength 17\n") ||
		!strings.HasSuffix(r.stdout, "verdict: warn\n") {
		t.Fatalf("scan: %v", r)
	}

	// --redact is a filter: redacted text on stdout, report on stderr.
	r = runEnv(t, nil, warn, "scan", "--redact")
	if r.code != 0 || r.stdout != "mail [REDACTED:email] now\n" || !strings.Contains(r.stderr, "email") ||
		!strings.Contains(r.stderr, "verdict: warn") {
		t.Fatalf("scan --redact: %v", r)
	}
	r = runEnv(t, nil, "key AKIAIOSFODNN7EXAMPLE, mail bob@example.org\n", "scan", "--redact", "-")
	if r.code != 123 || strings.Contains(r.stdout, "AKIA") || !strings.Contains(r.stdout, "[REDACTED:aws-access-key-id]") ||
		!strings.Contains(r.stdout, "[REDACTED:email]") || !strings.Contains(r.stderr, "verdict: block") {
		t.Fatalf("scan --redact of a cloud key: %v", r)
	}
	r = runEnv(t, nil, warn, "scan", "--redact", "--json")
	if err := json.Unmarshal([]byte(r.stderr), &rep); err != nil || r.code != 0 || rep.Verdict != "warn" ||
		r.stdout != "mail [REDACTED:email] now\n" {
		t.Fatalf("scan --redact --json: %v (%v)", r, err)
	}
	file := filepath.Join(t.TempDir(), "clean.txt")
	if err := os.WriteFile(file, []byte("nothing here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runKavach(t, "scan", "--redact", file); r.code != 0 || r.stdout != "nothing here\n" || !strings.Contains(r.stderr, "verdict: pass") {
		t.Fatalf("scan --redact FILE: %v", r)
	}
}

// TestSecretDefaultsToHostEnv: --secret NAME=... without --secret-from
// takes its value from the host variable NAME.
func TestSecretDefaultsToHostEnv(t *testing.T) {
	r := runEnv(t, nil, "", "run", "-b", "noop", "--secret", "KV_UNSET_SECRET_9=env:X", "--", "true")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || !strings.Contains(r.stderr, "variable KV_UNSET_SECRET_9 is not set") {
		t.Fatalf("unset variable: %v", r)
	}
	r = runEnv(t, nil, "", "run", "-b", "noop", "--secret", "a.b=stdin", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "--secret-from a.b=") {
		t.Fatalf("name that is no variable: %v", r)
	}
	processAvailable(t)
	const value = "kv-default-Hq73Zp01Xy"
	env := []string{"KV_TOKEN=" + value}
	r = runEnv(t, env, "", "run", "--secret", "KV_TOKEN=env:INSIDE", "--",
		"sh", "-c", `test "$INSIDE" = "`+value+`" && echo "inside=$INSIDE"`)
	if r.code != 0 || r.stdout != "inside=[REDACTED:secret:KV_TOKEN]\n" || strings.Contains(r.stdout+r.stderr, value) {
		t.Fatalf("default source: %v", r)
	}
	// An explicit --secret-from still wins.
	r = runEnv(t, append(env, "OTHER=kv-other-Lm55Rt"), "", "run", "--secret", "KV_TOKEN=env", "--secret-from", "KV_TOKEN=env:OTHER",
		"--", "sh", "-c", `test "$KV_TOKEN" = kv-other-Lm55Rt && echo ok`)
	if r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("explicit --secret-from: %v", r)
	}
}

// TestNetworkUnderDefaultPolicy: --network is an override like any other.
func TestNetworkUnderDefaultPolicy(t *testing.T) {
	for _, args := range [][]string{
		{"run", "-b", "noop", "--network", "--no-network", "--", "true"},
		{"run", "-b", "noop", "--network", "--allow-host", "example.com", "--", "true"},
	} {
		if r := runKavach(t, args...); r.code != 125 || !strings.Contains(r.stderr, "exclusive") {
			t.Errorf("%v: %v", args, r)
		}
	}
	if r := runKavach(t, "run", "--help"); strings.Contains(r.stdout, "refused under the default strict policy") {
		t.Errorf("--network help still says it is refused: %s", r.stdout)
	}
	processAvailable(t)
	r := runKavach(t, "run", "--network", "--json", "--", "true")
	var res struct {
		Status string
		Score  struct {
			Value     int
			Modifiers []struct {
				Name    string
				Applied bool
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || res.Status != "exited" || res.Score.Value != 60 {
		t.Fatalf("--network under strict: %v (%v)", r, err)
	}
	for _, m := range res.Score.Modifiers {
		if m.Name == "network-off" && m.Applied {
			t.Fatalf("network-off applied with --network: %v", res.Score)
		}
	}
}

// TestJSONErrors: errors go to stderr with --json too, and kavach errors
// after the flags were parsed are also a JSON object on stdout.
func TestJSONErrors(t *testing.T) {
	type jsonErr struct {
		Status, Error, Backend string
	}
	for _, tt := range []struct {
		args    []string
		backend string
		errText string
	}{
		{[]string{"run", "--json", "-b", "sgx", "--", "true"}, "sgx", "not implemented"},
		{[]string{"run", "--json", "-b", "noop", "--min-score", "1", "--", "true"}, "noop", "minimum is 1"},
		{[]string{"run", "--json", "-b", "noop", "-p", "paranoid", "--", "true"}, "noop", "paranoid"},
		{[]string{"run", "--json", "-b", "docker", "--", "true"}, "", "docker"},
	} {
		r := runKavach(t, tt.args...)
		var e jsonErr
		err := json.Unmarshal([]byte(r.stdout), &e)
		if r.code != 125 || err != nil || e.Status != "error" || e.Backend != tt.backend || !strings.Contains(e.Error, tt.errText) ||
			!strings.HasPrefix(r.stderr, "kavach: ") || !strings.Contains(r.stderr, tt.errText) {
			t.Errorf("kavach %v: %v (%v)", tt.args, r, err)
		}
	}
	// A flag that does not parse is not a JSON error.
	if r := runKavach(t, "run", "--json", "--bogus", "--", "true"); r.code != 125 || r.stdout != "" {
		t.Errorf("--bogus: %v", r)
	}

	processAvailable(t)
	for _, tt := range []struct {
		argv []string
		code int
	}{{[]string{"nosuchcmd"}, 127}, {[]string{"/etc/hostname"}, 126}} {
		r := runKavach(t, append([]string{"run", "--json", "--"}, tt.argv...)...)
		var res map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != tt.code || res["status"] != "error" ||
			!strings.HasPrefix(r.stderr, "kavach: ") {
			t.Errorf("run --json -- %v: %v (%v)", tt.argv, r, err)
		}
	}
}

// TestTruncationNote: in plain mode a stream cut at the cap says so.
func TestTruncationNote(t *testing.T) {
	processAvailable(t)
	// Ordinary output keeps every byte up to the cap.
	r := runKavach(t, "run", "--max-output", "1K", "--", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a")
	if r.code != 0 || len(r.stdout) != 1024 || r.stderr != "kavach: stdout truncated at 1K (--max-output)\n" {
		t.Fatalf("--max-output 1K: exit %d, %d bytes, stderr %q", r.code, len(r.stdout), r.stderr)
	}
	r = runKavach(t, "run", "--max-output", "1000", "--", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a | fold -w 100 >&2; head -c 5000 /dev/zero | tr '\\0' b | fold -w 100")
	if r.code != 0 || !strings.HasSuffix(r.stderr, "\nkavach: stdout and stderr truncated at 1000 (--max-output)\n") {
		t.Fatalf("both streams: exit %d, stderr tail %q", r.code, r.stderr[max(0, len(r.stderr)-80):])
	}
	r = runKavach(t, "run", "--", "sh", "-c", "head -c 1100000 /dev/zero | tr '\\0' a")
	if r.code != 0 || len(r.stdout) != 1<<20 || r.stderr != "kavach: stdout truncated at 1M (--max-output)\n" {
		t.Fatalf("default cap: exit %d, %d bytes, stderr %q", r.code, len(r.stdout), r.stderr)
	}
	r = runKavach(t, "run", "--json", "--max-output", "1K", "--", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a")
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, `"stdout_truncated": true`) {
		t.Fatalf("--json: %v", r)
	}
	if r := runKavach(t, "run", "--", "echo", "short"); r.stderr != "" {
		t.Fatalf("untruncated: %v", r)
	}
}

// TestVerboseExitStatus: -v names the exit status kavach returns.
func TestVerboseExitStatus(t *testing.T) {
	processAvailable(t)
	r := runKavach(t, "run", "-v", "--", "sh", "-c", "echo AKIAIOSFODNN7EXAMPLE")
	if r.code != 123 || !strings.Contains(r.stderr, "blocked (exit 123)") {
		t.Errorf("blocked: %v", r)
	}
	r = runKavach(t, "run", "-v", "--timeout", "300ms", "--", "sleep", "5")
	if r.code != 124 || !strings.Contains(r.stderr, "timeout (exit 124)") {
		t.Errorf("timeout: %v", r)
	}
	r = runKavach(t, "run", "-v", "--", "sh", "-c", "exit 3")
	if r.code != 3 || !strings.Contains(r.stderr, "exited (exit 3)") {
		t.Errorf("exit 3: %v", r)
	}
	t.Run("oci", func(t *testing.T) {
		backendAvailable(t, "oci")
		r := runKavach(t, "run", "-v", "-b", "oci", "--timeout", "500ms", "--", "sleep", "5")
		if r.code != 124 || !strings.Contains(r.stderr, "timeout (exit 124)") {
			t.Errorf("oci timeout: %v", r)
		}
	})
}

func TestVersion(t *testing.T) {
	r := runKavach(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kavach ") || strings.Contains(r.stdout, "(devel)") ||
		strings.Count(r.stdout, "dev") > 1 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("version: %v", r)
	}
	const rev = "5cce2c6a4142213d85246340ae95b89525e3fa41"
	info := func(v string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	for _, tt := range []struct {
		ld   string
		bi   *debug.BuildInfo
		want string
	}{
		{"", nil, "dev"},
		{"", info("(devel)"), "dev"},
		{"", info(""), "dev"},
		{"", info("(devel)", "vcs.revision", rev), "dev (5cce2c6a4142)"},
		{"", info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "dev (5cce2c6a4142, dirty)"},
		{"", info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "dev (5cce2c6a4142)"},
		{"", info("v0.0.0-20261127145604-5cce2c6a4142+dirty", "vcs.revision", rev, "vcs.modified", "true"),
			"v0.0.0-20261127145604-5cce2c6a4142+dirty"},
		{"", info("v0.0.0-20261127145604-5cce2c6a4142", "vcs.revision", rev), "v0.0.0-20261127145604-5cce2c6a4142"},
		{"", info("v1.2.0", "vcs.revision", rev), "v1.2.0 (5cce2c6a4142)"},
		{"", info("v1.2.0+dirty", "vcs.revision", rev, "vcs.modified", "true"), "v1.2.0+dirty (5cce2c6a4142)"},
		{"1.3.0", info("(devel)", "vcs.revision", rev), "1.3.0 (5cce2c6a4142)"},
		{"1.3.0", nil, "1.3.0"},
	} {
		if got := formatVersion(tt.ld, tt.bi); got != tt.want {
			t.Errorf("formatVersion(%q, %+v) = %q, want %q", tt.ld, tt.bi, got, tt.want)
		}
	}
}

// TestInterrupted: SIGINT and SIGTERM end `kavach run` with 128+N after
// the sandbox was destroyed, saying "interrupted".
func TestInterrupted(t *testing.T) {
	processAvailable(t)
	for _, tt := range []struct {
		sig  syscall.Signal
		json bool
	}{{syscall.SIGINT, false}, {syscall.SIGTERM, false}, {syscall.SIGINT, true}} {
		// A unique sleep argument finds the payload's processes.
		marker := fmt.Sprintf("30.%d%06d", os.Getpid(), time.Now().UnixNano()%1e6)
		args := []string{"run"}
		if tt.json {
			args = append(args, "--json")
		}
		args = append(args, "--", "sh", "-c", "sleep "+marker+"; echo done")
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(processesWith(marker, cmd.Process.Pid)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if len(processesWith(marker, cmd.Process.Pid)) == 0 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%v: the payload never started", tt.sig)
		}
		start := time.Now()
		_ = cmd.Process.Signal(tt.sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if want := 128 + int(tt.sig); code != want || time.Since(start) > 5*time.Second {
			t.Errorf("%v: exit %d after %v, want %d; stderr %q", tt.sig, code, time.Since(start), want, se.String())
		}
		if !strings.Contains(se.String(), "kavach: interrupted\n") || strings.Contains(se.String(), "context canceled") {
			t.Errorf("%v: stderr %q", tt.sig, se.String())
		}
		if tt.json {
			var e struct{ Status, Error string }
			if err := json.Unmarshal(so.Bytes(), &e); err != nil || e.Status != "error" || e.Error != "interrupted" {
				t.Errorf("%v --json: stdout %q (%v)", tt.sig, so.String(), err)
			}
		}
		if left := processesWith(marker, cmd.Process.Pid); len(left) > 0 {
			t.Errorf("%v: payload processes left: %v", tt.sig, left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// processesWith lists the pids other than not whose command line contains s.
func processesWith(s string, not int) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil && pid != not && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestUnknownSubcommand: an argument that names no subcommand of policy,
// audit or quarantine is an error (125), as an unknown command is.
func TestUnknownSubcommand(t *testing.T) {
	for _, group := range []string{"policy", "audit", "quarantine"} {
		if r := runKavach(t, group, "bogus"); r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: unknown command \"bogus\"") {
			t.Errorf("%s bogus: %v", group, r)
		}
		if r := runKavach(t, group); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s alone: %v", group, r)
		}
	}
}
