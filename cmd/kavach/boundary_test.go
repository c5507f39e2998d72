package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runEnv runs kavach with extra environment variables and stdin.
func runEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kavach %v: %v", args, err)
	}
	return result{code, so.String(), se.String()}
}

func TestGateBlocksCloudKey(t *testing.T) {
	processAvailable(t)
	r := runKavach(t, "run", "--", "sh", "-c", "echo AKIAIOSFODNN7EXAMPLE")
	if r.code != 123 || strings.Contains(r.stdout, "AKIA") {
		t.Fatalf("AWS key not blocked: %v", r)
	}
	r = runKavach(t, "run", "--json", "--", "sh", "-c", "echo AKIAIOSFODNN7EXAMPLE")
	var res struct {
		Status string
		Stdout string
		Gate   struct {
			Verdict  string
			Findings []struct{ Rule, Severity string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Gate.Verdict != "block" || res.Status != "blocked" || res.Stdout != "" || len(res.Gate.Findings) == 0 ||
		res.Gate.Findings[0].Severity != "critical" || strings.Contains(r.stdout, "AKIAIOSFODNN7EXAMPLE") {
		t.Fatalf("json: %s", r.stdout)
	}
}

func TestGateRedactsEmail(t *testing.T) {
	processAvailable(t)
	r := runKavach(t, "run", "--", "sh", "-c", "echo contact alice@example.com now")
	if r.code != 0 || r.stdout != "contact [REDACTED:email] now\n" {
		t.Fatalf("e-mail not redacted: %v", r)
	}
	r = runKavach(t, "run", "--gate", "off", "--json", "--", "sh", "-c", "echo alice@example.com")
	if !strings.Contains(r.stdout, `"verdict": "skipped"`) || !strings.Contains(r.stdout, "alice@example.com") {
		t.Fatalf("--gate off: %v", r)
	}
}

func TestInjectedSecretRedacted(t *testing.T) {
	processAvailable(t)
	const value = "kv-secret-Zx81Qm27Lp"
	env := []string{"HOST_TOKEN=" + value}
	r := runEnv(t, env, "", "run", "--secret", "TOK=env:TOKEN", "--secret-from", "TOK=env:HOST_TOKEN",
		"--", "sh", "-c", `test "$TOKEN" = "`+value+`" && echo "token=$TOKEN"`)
	if r.code != 0 || r.stdout != "token=[REDACTED:secret:TOK]\n" {
		t.Fatalf("injected secret: %v", r)
	}
	if strings.Contains(r.stdout+r.stderr, value) {
		t.Fatal("secret value in kavach's output")
	}
}

func TestStdinSecretOnlyOnStdin(t *testing.T) {
	processAvailable(t)
	const value = "kv-stdin-Q9w8E7r6T5"
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runEnv(t, nil, "", "run", "--secret", "S=stdin", "--secret-from", "S=file:"+file, "--",
		"sh", "-c", `read v; test "$v" = "`+value+`" && echo read-ok; env | grep -c Q9w8E7r6T5; grep -c Q9w8E7r6T5 /proc/self/environ`)
	if !strings.HasPrefix(r.stdout, "read-ok\n0\n0\n") {
		t.Fatalf("stdin secret: %v", r)
	}
}

func TestFDSecretAndErrors(t *testing.T) {
	processAvailable(t)
	env := []string{"HOST_TOKEN=fd-secret-value"}
	r := runEnv(t, env, "", "run", "--secret", "T=fd:7", "--secret-from", "T=env:HOST_TOKEN", "--",
		"sh", "-c", "wc -c <&7; env | grep -c fd-secret")
	if r.stdout != "15\n0\n" {
		t.Fatalf("fd secret: %v", r)
	}
	for _, args := range [][]string{
		{"run", "--secret", "MISSING=env:X", "--", "true"},
		{"run", "--secret", "A=env:X", "--secret", "A=env:Y", "--secret-from", "A=env:HOST_TOKEN", "--", "true"},
		{"run", "--secret", "A=bogus:1", "--secret-from", "A=env:HOST_TOKEN", "--", "true"},
	} {
		r := runEnv(t, env, "", args...)
		if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || strings.Contains(r.stderr, "fd-secret-value") {
			t.Errorf("%v: %v", args, r)
		}
	}
}

func TestScanAndAuditCommands(t *testing.T) {
	r := runEnv(t, nil, "token ghp_0123456789abcdefABCDEF0123456789abcd\n", "scan", "-")
	if r.code != 123 || !strings.Contains(r.stdout, "github") || strings.Contains(r.stdout, "ghp_0123") {
		t.Fatalf("scan: %v", r)
	}
	if r := runEnv(t, nil, "nothing to see here\n", "scan"); r.code != 0 || !strings.Contains(r.stdout, "verdict: pass") {
		t.Fatalf("scan clean: %v", r)
	}
	processAvailable(t)
	log := filepath.Join(t.TempDir(), "audit.log")
	key := []string{"KAVACH_AUDIT_KEY=test-audit-key-0123456789"}
	if r := runEnv(t, key, "", "run", "--audit", log, "--", "true"); r.code != 0 {
		t.Fatalf("run --audit: %v", r)
	}
	if r := runEnv(t, key, "", "audit", "verify", log); r.code != 0 || !strings.HasPrefix(r.stdout, "OK") {
		t.Fatalf("verify: %v", r)
	}
	if r := runEnv(t, []string{"KAVACH_AUDIT_KEY=wrong"}, "", "audit", "verify", log); r.code != 1 || !strings.Contains(r.stdout, "first bad serial 1") {
		t.Fatalf("verify with the wrong key: %v", r)
	}
	b, _ := os.ReadFile(log)
	lines := strings.SplitAfter(string(b), "\n")
	edited := strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), "")
	if err := os.WriteFile(log, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runEnv(t, key, "", "audit", "verify", log); r.code != 1 || !strings.Contains(r.stdout, "first bad serial 3") {
		t.Fatalf("verify after deleting line 3: %v", r)
	}
}

// TestRootless runs kavach as an unprivileged user: the process backend
// then works through a user namespace, with no capabilities inside.
func TestRootless(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if os.Geteuid() != 0 || err != nil {
		t.Skip("needs root (to become an unprivileged user) and setpriv")
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.Chown(home, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(home), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups",
		"env", "-i", "HOME="+home, "PATH=/usr/bin:/bin",
		bin, "run", "--best-effort", "--json", "--", "sh", "-c",
		"grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; echo x > /work/f && cat /work/f; touch /x 2>/dev/null || echo ro")
	cmd.Dir = home
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rootless run: %v\n%s%s", err, out, stderr.Bytes())
	}
	var res struct {
		Status string
		Stdout string
		Score  struct{ Value int }
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nx\nro\n"
	if res.Status != "exited" || res.Stdout != want {
		t.Fatalf("rootless sandbox: status %s stdout %q", res.Status, res.Stdout)
	}
	// Its state (env -i: no XDG_RUNTIME_DIR, no TMPDIR) is gone.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "kavach-1000", "process", strconv.Itoa(cmd.Process.Pid)+".*"))
	if len(left) > 0 {
		t.Fatalf("rootless state left behind: %v", left)
	}
}

func TestQuarantineFlow(t *testing.T) {
	processAvailable(t)
	q := t.TempDir()
	r := runKavach(t, "run", "--quarantine-dir", q, "--json", "--", "sh", "-c", "echo token ghp_0123456789abcdefABCDEF0123456789abcd")
	var res struct {
		Stdout string
		Gate   struct {
			Verdict      string `json:"verdict"`
			QuarantineID string `json:"quarantine_id"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 123 {
		t.Fatalf("%v: %v", err, r)
	}
	id := res.Gate.QuarantineID
	if res.Gate.Verdict != "quarantine" || id == "" || strings.Contains(r.stdout, "ghp_0123") {
		t.Fatalf("not quarantined: %s", r.stdout)
	}
	if r := runKavach(t, "quarantine", "--dir", q, "release", id, "--to", "-"); r.code != 125 || strings.Contains(r.stdout, "ghp_") {
		t.Fatalf("released before approval: %v", r)
	}
	if r := runKavach(t, "quarantine", "--dir", q, "show", id); r.code != 0 || strings.Contains(r.stdout, "ghp_") || !strings.Contains(r.stdout, `"pending"`) {
		t.Fatalf("show: %v", r)
	}
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	key := []string{"KAVACH_AUDIT_KEY=quarantine-test-key"}
	if r := runEnv(t, key, "", "quarantine", "--dir", q, "--audit", auditLog, "approve", id); r.code != 0 {
		t.Fatalf("approve: %v", r)
	}
	if b, _ := os.ReadFile(auditLog); !strings.Contains(string(b), `"quarantine.approve"`) || strings.Contains(string(b), "ghp_0123") {
		t.Fatalf("audit of the decision: %s", b)
	}
	if r := runKavach(t, "quarantine", "--dir", q, "release", id, "--to", "-"); r.code != 0 || !strings.Contains(r.stdout, "ghp_0123") {
		t.Fatalf("release after approval: %v", r)
	}
	if r := runKavach(t, "quarantine", "--dir", q, "reject", id); r.code != 125 {
		t.Fatalf("reject after approve must fail: %v", r)
	}
	r = runKavach(t, "run", "--quarantine-dir", q, "--json", "--", "true")
	if !strings.Contains(r.stdout, `"quarantine_id": ""`) {
		t.Fatalf("gate JSON lacks quarantine_id: %s", r.stdout)
	}
}

func TestExportThroughGate(t *testing.T) {
	processAvailable(t)
	dir := t.TempDir()
	ok, blocked, escaped := filepath.Join(dir, "ok"), filepath.Join(dir, "blocked"), filepath.Join(dir, "escaped")
	r := runKavach(t, "run", "--export", "/tmp/a:"+ok, "--export", "/work/b:"+blocked,
		"--", "sh", "-c", "echo 'mail bob@example.com' > /tmp/a; echo AKIAIOSFODNN7EXAMPLE > /work/b")
	if r.code != 123 {
		t.Fatalf("a blocked export must give 123: %v", r)
	}
	if b, err := os.ReadFile(ok); err != nil || string(b) != "mail [REDACTED:email]\n" {
		t.Fatalf("redacted export: %q %v", b, err)
	}
	if _, err := os.Stat(blocked); err == nil {
		t.Fatal("blocked file was written")
	}
	// A symlink that points out of the sandbox's view is refused, not followed.
	r = runKavach(t, "run", "--export", "/work/link:"+escaped, "--", "ln", "-s", "/proc/1/root/etc/shadow", "/work/link")
	if r.code != 125 || !strings.Contains(r.stderr, "escapes") {
		t.Fatalf("escaping symlink: %v", r)
	}
	if _, err := os.Stat(escaped); err == nil {
		t.Fatal("escaping export was written")
	}
}

func TestExportRefusesSpecialFiles(t *testing.T) {
	processAvailable(t)
	for _, setup := range []string{"mkfifo /work/f", "ln -s ../dev/tty /work/f", "ln -s ../dev/zero /work/f", "mkdir /work/f"} {
		r := runKavach(t, "run", "--export", "/work/f:"+filepath.Join(t.TempDir(), "out"), "--", "sh", "-c", setup)
		if r.code != 125 || !strings.Contains(r.stderr, "not a regular file") {
			t.Errorf("%s: %v", setup, r)
		}
	}
}

func TestProxySecretIsAPlaceholderInside(t *testing.T) {
	processAvailable(t)
	const value = "ghp_RealValueXYZ0123456789abcdefABCDEF01"
	r := runEnv(t, []string{"HOST_GH=" + value}, "", "run", "--json", "--secret", "GH=proxy:api.github.com",
		"--secret-from", "GH=env:HOST_GH", "--", "sh", "-c", `printf %s "$GH"; env | grep -c RealValue; echo; echo "$HTTPS_PROXY"`)
	var res struct {
		Stdout string
		Score  struct{ Value int }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v: %v", err, r)
	}
	lines := strings.Split(res.Stdout, "\n")
	// The placeholder has the value's length; grep -c appends "0": the value is in no variable.
	if strings.Contains(r.stdout, "RealValue") || len(lines) < 3 || len(lines[0]) != len(value)+1 ||
		!strings.HasSuffix(lines[0], "0") || lines[2] != "http://127.0.0.1:3128" {
		t.Fatalf("placeholder: %q", res.Stdout)
	}
	if res.Score.Value != 61 { // strict with the allowlist (+1) instead of network off (+3)
		t.Fatalf("score %d, want 61", res.Score.Value)
	}
	// Unrestricted network would let the placeholder's requests bypass the proxy.
	r = runEnv(t, []string{"HOST_GH=" + value}, "", "run", "--network", "--secret", "GH=proxy:api.github.com",
		"--secret-from", "GH=env:HOST_GH", "--", "true")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "kavach: ") || strings.Contains(r.stderr, "RealValue") {
		t.Fatalf("--network with a proxy-bound secret: %v", r)
	}
}

func TestQuarantineNeverStoresInjectedSecret(t *testing.T) {
	processAvailable(t)
	q := t.TempDir()
	const value = "hunter2-SuperSecretValue-12345"
	r := runEnv(t, []string{"HOSTTOK=" + value}, "", "run", "--quarantine-dir", q, "--json",
		"--secret", "TOK=env:TOK", "--secret-from", "TOK=env:HOSTTOK",
		"--", "sh", "-c", `echo "$TOK"; echo ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789`)
	if r.code != 123 || strings.Contains(r.stdout+r.stderr, value) {
		t.Fatalf("run: %v", r)
	}
	err := filepath.Walk(q, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), value) {
				t.Errorf("secret stored in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExportReadsAsTheSandboxUser: kavach must not read, on the sandbox's
// behalf, a file the payload itself cannot read, nor kernel files.
func TestExportReadsAsTheSandboxUser(t *testing.T) {
	processAvailable(t)
	if os.Geteuid() != 0 {
		t.Skip("as root only")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("TOPSECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	for _, link := range []string{"../data/secret", "../proc/kallsyms"} {
		r := runKavach(t, "run", "--ro", dir+":/data", "--export", "/work/a:"+out, "--", "ln", "-s", link, "/work/a")
		if r.code != 125 {
			t.Errorf("export of %s: %v", link, r)
		}
		if b, err := os.ReadFile(out); err == nil {
			t.Fatalf("export of %s wrote %q", link, b)
		}
	}
}

func TestExportFromContainers(t *testing.T) {
	for _, name := range []string{"oci", "gvisor"} {
		r := runKavach(t, "backends", "--json")
		if !strings.Contains(r.stdout, `"name": "`+name+`",
    "available": true`) {
			continue
		}
		out := filepath.Join(t.TempDir(), "out")
		r = runKavach(t, "run", "-b", name, "--export", "/work/r.txt:"+out, "--", "sh", "-c", "echo result > /work/r.txt")
		if data, err := os.ReadFile(out); r.code != 0 || err != nil || string(data) != "result\n" {
			t.Errorf("%s: export: %v %q %v", name, r, data, err)
		}
		r = runKavach(t, "run", "-b", name, "--export", "/tmp/x:"+out+"2", "--", "true")
		if r.code != 125 || !strings.Contains(r.stderr, "/work only") {
			t.Errorf("%s: export outside /work: %v", name, r)
		}
		// From a directory bound under /work, and from one bound at /work:
		// the file is in the bound host directory, not the private one.
		for _, dest := range []string{"/work/out", "/work"} {
			host := t.TempDir()
			if err := os.Chmod(host, 0o777); err != nil {
				t.Fatal(err)
			}
			r = runKavach(t, "run", "-b", name, "--rw", host+":"+dest, "--export", dest+"/r.txt:"+out+"3",
				"--", "sh", "-c", "echo bound > "+dest+"/r.txt")
			if data, err := os.ReadFile(out + "3"); r.code != 0 || err != nil || string(data) != "bound\n" {
				t.Errorf("%s: export from a bind at %s: %v %q %v", name, dest, r, data, err)
			}
			os.Remove(out + "3")
		}
	}
}

// TestExportDestinationNotFollowed: the payload writes to the export's
// destination directory through a --rw bind and plants a symlink (or a
// FIFO) at the destination, or turns a directory on the way into a
// symlink. kavach, running as root, must neither write through the link
// nor block on the FIFO.
func TestExportDestinationNotFollowed(t *testing.T) {
	processAvailable(t)
	dir := t.TempDir()
	out, victim := filepath.Join(dir, "out"), filepath.Join(dir, "victim")
	if err := os.MkdirAll(filepath.Join(out, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("ORIGINAL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runKavach(t, "run", "--rw", out+":/work/out", "--export", "/work/r:"+filepath.Join(out, "report"),
		"--", "sh", "-c", "echo attacker > /work/r; ln -s "+victim+" /work/out/report")
	if b, _ := os.ReadFile(victim); string(b) != "ORIGINAL\n" || r.code != 0 {
		t.Fatalf("export wrote through a planted symlink: victim %q, %v", b, r)
	}
	if b, err := os.ReadFile(filepath.Join(out, "report")); err != nil || string(b) != "attacker\n" {
		t.Fatalf("export not written in place of the link: %q %v", b, err)
	}
	done := make(chan result, 1)
	go func() {
		done <- runKavach(t, "run", "--rw", out+":/work/out", "--export", "/work/r:"+filepath.Join(out, "fifo"),
			"--", "sh", "-c", "echo x > /work/r; mkfifo /work/out/fifo")
	}()
	select {
	case r := <-done:
		if fi, err := os.Lstat(filepath.Join(out, "fifo")); r.code != 0 || err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("export over a FIFO: %v, %v", r, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("export blocked on a FIFO planted at the destination")
	}
	r = runKavach(t, "run", "--rw", out+":/work/out", "--export", "/work/r:"+filepath.Join(out, "sub", "x"),
		"--", "sh", "-c", "echo attacker > /work/r; rmdir /work/out/sub; ln -s "+dir+" /work/out/sub")
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil || r.code != 125 || !strings.Contains(r.stderr, "symlink") {
		t.Fatalf("export followed a directory swapped for a symlink: %v", r)
	}
}

// TestRelativeSourceUnderLinkedDirectory: a relative mount source is made
// absolute from the kernel's current directory, not from $PWD, which keeps
// the symbolic link the shell came through (and sources with links in
// their path are refused).
func TestRelativeSourceUnderLinkedDirectory(t *testing.T) {
	processAvailable(t)
	base := t.TempDir()
	real, link := filepath.Join(base, "real"), filepath.Join(base, "link")
	if err := os.MkdirAll(filepath.Join(real, "A"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "A", "x"), []byte("through the link\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--ro", "A:/work/a", "--", "cat", "/work/a/x")
	cmd.Dir = link
	cmd.Env = append(os.Environ(), "PWD="+link)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "through the link") {
		t.Fatalf("relative source from a linked directory: %v\n%s", err, out)
	}
}
