package runtime

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/internal/egresstest"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// egressContainer creates an allowlist container whose proxy resolves the
// test names through names (to loopback upstreams the test runs).
func egressContainer(t *testing.T, k Kind, allow []string, names map[string]string, e backend.Egress) (*Container, *egresstest.Recorder) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	p := testPolicy()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: allow}
	log := egresstest.Configure(&e, names)
	c := newContainerSpec(t, k, &backend.Spec{Policy: p, Env: testEnv, Egress: e})
	if !c.Enforcement().Layers.Has(score.NetworkAllowlist) {
		t.Fatalf("allowlist not reported as enforced: %v", c.Enforcement().Lost)
	}
	return c, log
}

func TestAllowlistThroughProxy(t *testing.T) {
	addr, port := egresstest.Upstream(t, "upstream-ok")
	forEachKind(t, func(t *testing.T, k Kind) {
		c, log := egressContainer(t, k, []string{"api.allowed.test:" + port, "meta.allowed.test:" + port},
			map[string]string{"api.allowed.test": "127.0.0.1", "other.test": "127.0.0.1", "meta.allowed.test": "169.254.169.254"},
			backend.Egress{})
		if got := sh(t, c, "curl -sS -m 5 http://api.allowed.test:"+port+"/"); !strings.Contains(got, "upstream-ok") {
			t.Fatalf("allowed host through curl: %q", got)
		}
		py := "import urllib.request; print(urllib.request.urlopen('http://api.allowed.test:" + port + "/', timeout=5).read().decode())"
		if out := run(t, c, "python3", "-c", py); out.ExitCode != 0 || !strings.Contains(string(out.Stdout), "upstream-ok") {
			t.Fatalf("allowed host through python: %q %q", out.Stdout, out.Stderr)
		}
		out := run(t, c, "curl", "-sS", "-m", "5", "http://other.test:"+port+"/")
		if !strings.Contains(string(out.Stdout), "kavach egress: host not in allowlist") {
			t.Fatalf("other host not refused by the proxy: %q %q", out.Stdout, out.Stderr)
		}
		out = run(t, c, "curl", "-sS", "-m", "5", "http://meta.allowed.test:"+port+"/")
		if strings.Contains(string(out.Stdout), "upstream-ok") || !strings.Contains(string(out.Stdout), "kavach egress") {
			t.Fatalf("allowed name resolving to the metadata address let through: %q", out.Stdout)
		}
		for _, direct := range []string{
			"curl -sS -m 3 --noproxy '*' http://" + addr + "/",
			"python3 -c \"import socket; socket.create_connection(('127.0.0.1', " + port + "), timeout=3)\"",
			"python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('1.1.1.1', 53))\"",
			"getent hosts example.com",
		} {
			if out := run(t, c, "sh", "-c", direct); out.ExitCode == 0 {
				t.Errorf("direct route worked: %s: %q", direct, out.Stdout)
			}
		}
		if log.Count(egress.KindAllow) == 0 || log.Count(egress.KindDeny) < 2 {
			t.Fatalf("events: %d allow, %d deny", log.Count(egress.KindAllow), log.Count(egress.KindDeny))
		}
	})
}

func TestSecretSubstitutedOnlyForBoundHost(t *testing.T) {
	_, port := egresstest.Upstream(t, "bound")
	secret := "ghp_realSecretValue0123456789abcdefABCD"
	placeholder := egress.GeneratePlaceholder([]byte(secret))
	bound, _ := egress.ParseRule("api.allowed.test:" + port)
	forEachKind(t, func(t *testing.T, k Kind) {
		c, log := egressContainer(t, k, []string{"api.allowed.test:" + port, "other.allowed.test:" + port},
			map[string]string{"api.allowed.test": "127.0.0.1", "other.allowed.test": "127.0.0.1"},
			backend.Egress{Substitutions: []egress.Substitution{{Placeholder: placeholder, Secret: []byte(secret), Hosts: []egress.Rule{bound}}}})
		req := &backend.ExecRequest{Argv: []string{"sh", "-c",
			`echo "env holds: $TOKEN"; curl -sS -m 5 -H "Authorization: Bearer $TOKEN" http://api.allowed.test:` + port + `/; echo; ` +
				`curl -sS -m 5 -H "Authorization: Bearer $TOKEN" http://other.allowed.test:` + port + `/; echo; echo "$SSL_CERT_FILE"`},
			Env: []string{"TOKEN=" + placeholder}, Timeout: 20 * time.Second, MaxOutput: 1 << 16}
		stdout := string(runReq(t, c, req).Stdout)
		lines := strings.Split(stdout, "\n")
		// Plain http: the proxy refuses to put the secret in clear text (HTTPS: TestSecretSubstitutedOverTLS).
		if len(lines) < 4 || lines[0] != "env holds: "+placeholder || !strings.Contains(lines[1], "only substituted in request headers over https") {
			t.Fatalf("stdout %q", lines)
		}
		if strings.Contains(stdout, secret) || !strings.Contains(lines[3], "credential placeholder") || log.Count(egress.KindLeak) == 0 {
			t.Fatalf("placeholder to another host not blocked: %q (leak events %d)", lines, log.Count(egress.KindLeak))
		}
		if !strings.HasSuffix(stdout, "\n/etc/ssl/certs/ca-certificates.crt\n") {
			t.Errorf("SSL_CERT_FILE not set to the extended trust store: %q", stdout)
		}
	})
}

func TestSecretSubstitutedOverTLS(t *testing.T) {
	srv, port, seen := egresstest.TLSUpstream(t, 4)
	secret := "sk_live_0123456789abcdefGHIJKLMNOP"
	placeholder := egress.GeneratePlaceholder([]byte(secret))
	bound, _ := egress.ParseRule("example.com:" + port)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate()) // httptest's certificate names example.com
	forEachKind(t, func(t *testing.T, k Kind) {
		c, _ := egressContainer(t, k, []string{"example.com:" + port}, map[string]string{"example.com": "127.0.0.1"},
			backend.Egress{UpstreamRoots: roots,
				Substitutions: []egress.Substitution{{Placeholder: placeholder, Secret: []byte(secret), Hosts: []egress.Rule{bound}}}})
		req := &backend.ExecRequest{Argv: []string{"sh", "-c", `curl -sS -m 5 -H "Authorization: Bearer $TOKEN" https://example.com:` + port + `/`},
			Env: []string{"TOKEN=" + placeholder}, Timeout: 20 * time.Second, MaxOutput: 1 << 16}
		out := runReq(t, c, req)
		if got := <-seen; got != "Bearer "+secret {
			t.Fatalf("upstream received %q, want the real secret", got)
		}
		// The echo comes back with the placeholder: the secret never enters the container.
		if got := string(out.Stdout); out.ExitCode != 0 || got != "tls auth=Bearer "+placeholder {
			t.Fatalf("stdout %q stderr %q", got, out.Stderr)
		}
	})
}

// TestGVisorAllowlistNamespace: under gVisor the proxy sits in the
// sandbox's own network namespace, which holds nothing but loopback; the
// payload cannot add a route or an address; the namespace is gone after
// Destroy (the listener was its last reference besides the sandbox).
func TestGVisorAllowlistNamespace(t *testing.T) {
	requireRuntime(t, Runsc)
	p := testPolicy()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com"}}
	c := newContainer(t, Runsc, p)
	if !c.Enforcement().Layers.Has(score.NetworkAllowlist) {
		t.Fatalf("enforcement %+v", c.Enforcement())
	}
	ns, err := os.Readlink("/proc/" + strconv.Itoa(c.init) + "/ns/net")
	if own, _ := os.Readlink("/proc/self/ns/net"); err != nil || ns == own {
		t.Fatalf("sandbox network namespace %q (%v), kavach's %q", ns, err, own)
	}
	// Seen from the host: the namespace has loopback only and no route.
	dev, _ := os.ReadFile("/proc/" + strconv.Itoa(c.init) + "/net/dev")
	if ifs := interfaces(string(dev)); len(ifs) != 1 || ifs[0] != "lo" {
		t.Errorf("interfaces in the sandbox's namespace: %v", ifs)
	}
	if route, _ := os.ReadFile("/proc/" + strconv.Itoa(c.init) + "/net/route"); strings.Count(string(route), "\n") > 1 {
		t.Errorf("routes in the sandbox's namespace:\n%s", route)
	}
	for _, attack := range []string{
		"ip link add dummy0 type dummy",
		"ip addr add 10.9.9.9/24 dev lo",
		"ip route add default dev lo",
		"python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\"",
	} {
		if out := run(t, c, "sh", "-c", attack); out.ExitCode == 0 {
			t.Errorf("inside gVisor %q succeeded", attack)
		}
	}
	if dev2, _ := os.ReadFile("/proc/" + strconv.Itoa(c.init) + "/net/dev"); len(interfaces(string(dev2))) != 1 {
		t.Errorf("interfaces changed: %v", interfaces(string(dev2)))
	}
	if len(netnsHolders(ns)) == 0 {
		t.Fatalf("no process found in %s: the check below would prove nothing", ns)
	}
	if err := c.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if holders := netnsHolders(ns); len(holders) > 0 {
		t.Errorf("network namespace %s still held by %v after Destroy", ns, holders)
	}
}

// interfaces lists the interface names of a /proc/net/dev table.
func interfaces(dev string) []string {
	var names []string
	for _, line := range strings.Split(dev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// netnsHolders lists the pids of processes in network namespace ns
// ("net:[inode]").
func netnsHolders(ns string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, _ := os.Readlink("/proc/" + e.Name() + "/ns/net"); l == ns {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestStaleCleanupGVisorAllowlist: when the kavach process that served a
// gVisor allowlist dies, its listener closes with it, and the stale cleanup
// that deletes the sandbox frees the network namespace: kavach creates no
// namespace of its own that could outlive both.
func TestStaleCleanupGVisorAllowlist(t *testing.T) {
	rt := requireRuntime(t, Runsc)
	ctx := context.Background()
	p := testPolicy()
	p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com"}}
	id, die := mortalOwner(t, "stale-gvisor-net")
	c := &Container{rt: rt, id: id, spec: &backend.Spec{ID: "stale", Policy: p, Env: testEnv}}
	cfg := bundleConfig(rt, c, nil)
	extra, err := c.setupProxy(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Extra = extra
	if err := c.start(ctx, cfg); err != nil {
		_ = c.Destroy(ctx)
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = c.Destroy(ctx) })
	ns, err := os.Readlink("/proc/" + strconv.Itoa(c.init) + "/ns/net")
	if err != nil || c.proxyLn == nil {
		t.Fatalf("no proxy in the sandbox's namespace: %v", err)
	}
	if len(netnsHolders(ns)) == 0 {
		t.Fatalf("no process found in %s: the check below would prove nothing", ns)
	}
	c.closeProxy() // what the kernel does to a dead owner's sockets
	die()
	CleanupStale(ctx, rt)
	select { // the dead owner's reaper exits by itself once the sandbox is gone
	case <-c.reaper.done:
	case <-time.After(reaperWait):
		t.Error("the reaper did not exit after the stale cleanup")
	}
	assertGone(t, c)
	if holders := netnsHolders(ns); len(holders) > 0 {
		t.Errorf("network namespace %s still held by %v after stale cleanup", ns, holders)
	}
}
