package process

import (
	"context"
	"crypto/x509"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/internal/egresstest"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// egressSandbox creates an allowlist sandbox whose proxy resolves the test
// names through names (to loopback upstreams the test runs).
func egressSandbox(t *testing.T, allow []string, names map[string]string, subs []egress.Substitution) (backend.Instance, *egresstest.Recorder) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	p := policy.Strict()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: allow}
	e := backend.Egress{Substitutions: subs}
	log := egresstest.Configure(&e, names)
	spec := &backend.Spec{ID: "t-" + strings.ReplaceAll(t.Name(), "/", "-"), Policy: p,
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work"}, Egress: e}
	inst, err := New().Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { inst.Destroy(context.Background()) })
	if !inst.Enforcement().Layers.Has(score.NetworkAllowlist) {
		t.Fatal("allowlist not reported as enforced")
	}
	return inst, log
}

func TestAllowlistThroughProxy(t *testing.T) {
	addr, port := egresstest.Upstream(t, "upstream-ok")
	inst, log := egressSandbox(t, []string{"api.allowed.test:" + port, "meta.allowed.test:" + port, "loop.allowed.test:" + port},
		map[string]string{"api.allowed.test": "127.0.0.1", "other.test": "127.0.0.1", "meta.allowed.test": "169.254.169.254",
			"loop.allowed.test": "127.0.0.2"}, nil)

	out := execIn(t, inst, "curl", "-sS", "-m", "5", "http://api.allowed.test:"+port+"/")
	mustExit(t, out, 0)
	if !strings.Contains(string(out.Stdout), "upstream-ok") {
		t.Fatalf("allowed host: %q %q", out.Stdout, out.Stderr)
	}
	out = execIn(t, inst, "python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://api.allowed.test:"+port+"/', timeout=5).read().decode())")
	mustExit(t, out, 0)

	out = execIn(t, inst, "curl", "-sS", "-m", "5", "http://other.test:"+port+"/")
	if !strings.Contains(string(out.Stdout), "kavach egress: host not in allowlist") {
		t.Fatalf("other host not refused by the proxy: %q %q", out.Stdout, out.Stderr)
	}
	for _, name := range []string{"meta.allowed.test", "loop.allowed.test"} { // metadata, host loopback
		out = execIn(t, inst, "curl", "-sS", "-m", "5", "http://"+name+":"+port+"/")
		if strings.Contains(string(out.Stdout), "upstream-ok") || !strings.Contains(string(out.Stdout), "kavach egress") || strings.Contains(string(out.Stdout), "upstream failure") {
			t.Fatalf("%s: an allowed name resolving to a forbidden address was let through: %q %q", name, out.Stdout, out.Stderr)
		}
	}
	for _, direct := range []string{
		"curl -sS -m 3 --noproxy '*' http://" + addr + "/",
		"python3 -c \"import socket; socket.create_connection(('127.0.0.1', " + port + "), timeout=3)\"",
		"python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('1.1.1.1', 53))\"",
		"getent hosts example.com",
	} {
		out = execIn(t, inst, "sh", "-c", direct)
		if out.ExitCode == 0 {
			t.Errorf("direct route worked: %s: %q", direct, out.Stdout)
		}
	}
	if log.Count(egress.KindAllow) == 0 || log.Count(egress.KindDeny) < 2 {
		t.Fatalf("events: %d allow, %d deny", log.Count(egress.KindAllow), log.Count(egress.KindDeny))
	}
}

func TestProxySurvivesManyDenials(t *testing.T) {
	_, port := egresstest.Upstream(t, "still-ok")
	inst, log := egressSandbox(t, []string{"api.allowed.test:" + port}, map[string]string{"api.allowed.test": "127.0.0.1"}, nil)
	script := `import socket
ok = 0
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\n\r\n")
    if b" 403 " in s.recv(200): ok += 1
    s.close()
print(ok)`
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"python3", "-c", script}, Timeout: 60 * time.Second, MaxOutput: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	mustExit(t, out, 0)
	if strings.TrimSpace(string(out.Stdout)) != "1000" || log.Count(egress.KindDeny) < 1000 {
		t.Fatalf("denials: %q, %d deny events", out.Stdout, log.Count(egress.KindDeny))
	}
	out = execIn(t, inst, "curl", "-sS", "-m", "5", "http://api.allowed.test:"+port+"/")
	if !strings.Contains(string(out.Stdout), "still-ok") {
		t.Fatalf("proxy broken after 1000 denials: %q %q", out.Stdout, out.Stderr)
	}
}

func TestSecretSubstitutedOnlyForBoundHost(t *testing.T) {
	_, port := egresstest.Upstream(t, "bound")
	secret := "ghp_realSecretValue0123456789abcdefABCD"
	placeholder := egress.GeneratePlaceholder([]byte(secret))
	bound, _ := egress.ParseRule("api.allowed.test:" + port)
	inst, log := egressSandbox(t, []string{"api.allowed.test:" + port, "other.allowed.test:" + port},
		map[string]string{"api.allowed.test": "127.0.0.1", "other.allowed.test": "127.0.0.1"},
		[]egress.Substitution{{Placeholder: placeholder, Secret: []byte(secret), Hosts: []egress.Rule{bound}}})
	req := &backend.ExecRequest{Argv: []string{"sh", "-c",
		`echo "env holds: $TOKEN"; curl -sS -m 5 -H "Authorization: Bearer $TOKEN" http://api.allowed.test:` + port + `/; echo; ` +
			`curl -sS -m 5 -H "Authorization: Bearer $TOKEN" http://other.allowed.test:` + port + `/`},
		Env: []string{"TOKEN=" + placeholder}, Timeout: 20 * time.Second, MaxOutput: 1 << 16}
	out, err := inst.Exec(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out.Stdout), "\n")
	// Plain http: the proxy refuses to put the secret in clear text.
	if len(lines) < 4 || lines[0] != "env holds: "+placeholder || !strings.Contains(lines[1], "only substituted in request headers over https") {
		t.Fatalf("stdout %q", out.Stdout)
	}
	if strings.Contains(string(out.Stdout), secret) || !strings.Contains(lines[3], "credential placeholder") || log.Count(egress.KindLeak) == 0 {
		t.Fatalf("placeholder to another host not blocked: %q (leak events %d)", out.Stdout, log.Count(egress.KindLeak))
	}
}

func TestSecretSubstitutedOverTLS(t *testing.T) {
	srv, port, seen := egresstest.TLSUpstream(t, 1)
	secret := "sk_live_0123456789abcdefGHIJKLMNOP"
	placeholder := egress.GeneratePlaceholder([]byte(secret))
	bound, _ := egress.ParseRule("example.com:" + port)
	p := policy.Strict()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com:" + port}}
	// httptest's certificate names example.com: the test resolver maps it to loopback.
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	spec := &backend.Spec{ID: "t-tls", Policy: p, Env: []string{"PATH=/usr/bin:/bin", "TOKEN=" + placeholder},
		Egress: backend.Egress{
			Substitutions: []egress.Substitution{{Placeholder: placeholder, Secret: []byte(secret), Hosts: []egress.Rule{bound}}},
			Resolve: func(context.Context, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			},
			AllowPrivate:  []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			UpstreamRoots: roots,
		}}
	inst, err := New().Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Destroy(context.Background())
	out := execIn(t, inst, "sh", "-c", `curl -sS -m 5 -H "Authorization: Bearer $TOKEN" https://example.com:`+port+`/`)
	mustExit(t, out, 0)
	if got := <-seen; got != "Bearer "+secret {
		t.Fatalf("upstream received %q, want the real secret", got)
	}
	// The echo comes back with the placeholder: the secret never enters the sandbox.
	if got := string(out.Stdout); got != "tls auth=Bearer "+placeholder {
		t.Fatalf("stdout %q stderr %q", got, out.Stderr)
	}
}

func TestAllowlistLandlockConnectOnlyToProxy(t *testing.T) {
	inst, _ := egressSandbox(t, []string{"api.allowed.test:80"}, map[string]string{}, nil)
	// A listener of the sandbox's own on loopback: reachable for bind, not for connect.
	script := `import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); port = s.getsockname()[1]
try:
    socket.create_connection(("127.0.0.1", port), timeout=2); print("connected")
except OSError as e:
    print("refused", e.errno)
socket.create_connection(("127.0.0.1", 3128), timeout=2); print("proxy ok")`
	out := execIn(t, inst, "python3", "-c", script)
	mustExit(t, out, 0)
	if got := string(out.Stdout); got != "refused 13\nproxy ok\n" {
		t.Fatalf("stdout %q stderr %q (want EACCES for anything but the proxy)", got, out.Stderr)
	}
}
