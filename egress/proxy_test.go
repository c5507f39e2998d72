package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAllowedHostReachable(t *testing.T) {
	httpUp, tlsUp := newUpstream(t, false), newUpstream(t, true)
	res := newResolver("api.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{
		Allow:        rules(t, hostPort("api.allowed.test", httpUp.port), hostPort("api.allowed.test", tlsUp.port)),
		Resolve:      res.resolve,
		AllowPrivate: loopback32,
	})
	c := p.client(t, getPKI(t).pool)
	for _, u := range []string{
		fmt.Sprintf("http://api.allowed.test:%d/plain", httpUp.port),
		fmt.Sprintf("https://api.allowed.test:%d/tls", tlsUp.port),
	} {
		code, body, err := get(t, c, u)
		if err != nil || code != 200 || !strings.HasPrefix(body, "upstream says hi") {
			t.Fatalf("GET %s = %d %q %v", u, code, body, err)
		}
	}
	if got := httpUp.requests(); len(got) != 1 || got[0].Host != hostPort("api.allowed.test", httpUp.port) {
		t.Errorf("plain upstream saw %+v", got)
	}
	p.events.mustFind(t, KindAllow, "forward http")
	p.events.mustFind(t, KindAllow, "SNI checked")
}

func TestCurlThroughProxy(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	httpUp, tlsUp := newUpstream(t, false), newUpstream(t, true)
	res := newResolver("api.allowed.test", "127.0.0.1", "evil.test", "127.0.0.1")
	p := startProxy(t, Config{
		Allow:        rules(t, hostPort("api.allowed.test", tlsUp.port), hostPort("api.allowed.test", httpUp.port)),
		Resolve:      res.resolve,
		AllowPrivate: loopback32,
	})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, getPKI(t).caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		base := []string{"-sS", "--max-time", "10", "--noproxy", "", "-x", "http://" + p.addr, "--cacert", caFile}
		cmd := exec.Command(curl, append(base, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(fmt.Sprintf("https://api.allowed.test:%d/curl", tlsUp.port)); err != nil || !strings.Contains(out, "upstream says hi to /curl") {
		t.Fatalf("curl https: %v: %s", err, out)
	}
	if out, err := run(fmt.Sprintf("http://api.allowed.test:%d/curl", httpUp.port)); err != nil || !strings.Contains(out, "upstream says hi") {
		t.Fatalf("curl http: %v: %s", err, out)
	}
	out, _ := run(fmt.Sprintf("http://evil.test:%d/", httpUp.port))
	if want := fmt.Sprintf("kavach egress: host not in allowlist: evil.test:%d", httpUp.port); !strings.Contains(out, want) {
		t.Errorf("curl to a denied host printed %q, want %q", out, want)
	}
	if out, err := run(fmt.Sprintf("https://evil.test:%d/", tlsUp.port)); err == nil || !strings.Contains(out, "403") {
		t.Errorf("curl https to a denied host: %v: %s", err, out)
	}
}

func TestDeniedHostClearError(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver("api.allowed.test", "127.0.0.1", "evil.test", "127.0.0.1")
	p := startProxy(t, Config{Allow: rules(t, "api.allowed.test"), Resolve: res.resolve, AllowPrivate: loopback32})

	resp, body, _ := p.connect(t, "evil.test:443")
	if resp.StatusCode != 403 || body != "kavach egress: host not in allowlist: evil.test:443\n" {
		t.Errorf("CONNECT evil.test:443 = %d %q", resp.StatusCode, body)
	}
	target := hostPort("evil.test", up.port)
	resp, body = p.raw(t, fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", target, target))
	if resp.StatusCode != 403 || !strings.Contains(body, "host not in allowlist: "+target) {
		t.Errorf("GET %s = %d %q", target, resp.StatusCode, body)
	}
	if len(up.requests()) != 0 {
		t.Error("a denied request reached the upstream")
	}
	ev := p.events.mustFind(t, KindDeny, "evil.test:443")
	if ev.Host != "evil.test" || ev.Port != 443 || ev.Method != "CONNECT" || ev.Time.IsZero() {
		t.Errorf("deny event %+v", ev)
	}
	// Requests that are not proxy requests are refused clearly.
	resp, body = p.raw(t, "GET / HTTP/1.1\r\nHost: api.allowed.test\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "not a proxy request") {
		t.Errorf("origin-form request = %d %q", resp.StatusCode, body)
	}
}

func TestExpectContinue(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver("api.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{Allow: rules(t, hostPort("api.allowed.test", up.port)), Resolve: res.resolve, AllowPrivate: loopback32})
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	target := hostPort("api.allowed.test", up.port)
	fmt.Fprintf(c, "POST http://%s/upload HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue before the body, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST: %v %v", resp, err)
	}
}

func TestWildcardAndCase(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver()
	for _, n := range []string{"a.wild.test", "deep.a.wild.test", "wild.test", "evilwild.test", "wild.test.evil.test", "awild.test"} {
		res.set(n, "127.0.0.1")
	}
	p := startProxy(t, Config{Allow: rules(t, hostPort("*.wild.test", up.port)), Resolve: res.resolve, AllowPrivate: loopback32})
	c := p.client(t, nil)
	cases := map[string]bool{
		"a.wild.test": true, "deep.a.wild.test": true, "A.WILD.TEST.": true,
		"wild.test": false, "evilwild.test": false, "wild.test.evil.test": false, "awild.test": false,
	}
	for host, want := range cases {
		code, body, err := get(t, c, fmt.Sprintf("http://%s/", hostPort(host, up.port)))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if got := code == 200; got != want {
			t.Errorf("%s: status %d (%q), want allowed=%v", host, code, body, want)
		}
		if !want && !strings.Contains(body, "host not in allowlist") {
			t.Errorf("%s: denial body %q", host, body)
		}
	}
}

// redirectDial sends dials for port 443 to the given test port and records
// every address dialed.
type redirectDial struct {
	mu     sync.Mutex
	dialed []string
	to     int
}

func (d *redirectDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	d.mu.Unlock()
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Port() == 443 {
		addr = netip.AddrPortFrom(ap.Addr(), uint16(d.to)).String()
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func TestPortRules(t *testing.T) {
	up := newUpstream(t, true)
	res := newResolver("api.allowed.test", "127.0.0.1", "other.allowed.test", "127.0.0.1")
	dialer := &redirectDial{to: up.port}
	p := startProxy(t, Config{
		Allow:        rules(t, "api.allowed.test", "other.allowed.test:8443"),
		Resolve:      res.resolve,
		Dial:         dialer.dial,
		AllowPrivate: loopback32,
	})
	c := p.client(t, getPKI(t).pool)
	if code, body, err := get(t, c, "https://api.allowed.test/default-port"); err != nil || code != 200 {
		t.Fatalf("default port 443: %d %q %v", code, body, err)
	}
	for _, target := range []string{"api.allowed.test:8443", "api.allowed.test:22", "other.allowed.test:443", "other.allowed.test:80"} {
		if resp, body, _ := p.connect(t, target); resp.StatusCode != 403 || !strings.Contains(body, "host not in allowlist") {
			t.Errorf("CONNECT %s = %d %q", target, resp.StatusCode, body)
		}
	}
	for _, a := range dialer.dialed {
		if _, err := netip.ParseAddrPort(a); err != nil {
			t.Errorf("proxy dialed %q, not a checked IP address", a)
		}
	}
}

func TestRebindingRefused(t *testing.T) {
	up := newUpstream(t, true)
	forbidden := []string{"127.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "fd00:ec2::254", "10.0.0.1", "::1"}
	res := newResolver()
	var allow []string
	for i, a := range forbidden {
		name := fmt.Sprintf("h%d.rebind.test", i)
		res.set(name, a)
		allow = append(allow, hostPort(name, up.port))
	}
	dialer := &redirectDial{}
	p := startProxy(t, Config{Allow: rules(t, allow...), Resolve: res.resolve, Dial: dialer.dial})
	for i, a := range forbidden {
		target := hostPort(fmt.Sprintf("h%d.rebind.test", i), up.port)
		resp, body, _ := p.connect(t, target)
		if resp.StatusCode != 403 || !strings.Contains(body, ErrAddressNotAllowed.Error()) || !strings.Contains(body, netip.MustParseAddr(a).Unmap().String()) {
			t.Errorf("CONNECT %s (-> %s) = %d %q", target, a, resp.StatusCode, body)
		}
	}
	// AllowPrivate for 127.0.0.1 does not open the metadata address or the NAT64 form.
	p2 := startProxy(t, Config{Allow: rules(t, allow...), Resolve: res.resolve, Dial: dialer.dial, AllowPrivate: loopback32})
	for i, a := range forbidden {
		resp, _, _ := p2.connect(t, hostPort(fmt.Sprintf("h%d.rebind.test", i), up.port))
		wantOK := a == "127.0.0.1" || a == "::ffff:127.0.0.1"
		if (resp.StatusCode == 200) != wantOK {
			t.Errorf("with AllowPrivate 127.0.0.1/32, %s: status %d", a, resp.StatusCode)
		}
	}
	if len(dialer.dialed) != 2 {
		t.Errorf("proxy dialed %v; want only the two allowed loopback targets", dialer.dialed)
	}
}

func TestRebindingRecheckedPerConnection(t *testing.T) {
	up := newUpstream(t, true)
	res := newResolver("flip.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{Allow: rules(t, hostPort("flip.allowed.test", up.port)), Resolve: res.resolve, AllowPrivate: loopback32})
	target := hostPort("flip.allowed.test", up.port)
	if resp, body, _ := p.connect(t, target); resp.StatusCode != 200 {
		t.Fatalf("first CONNECT = %d %q", resp.StatusCode, body)
	}
	res.set("flip.allowed.test", "169.254.169.254")
	resp, body, _ := p.connect(t, target)
	if resp.StatusCode != 403 || !strings.Contains(body, "169.254.169.254") {
		t.Errorf("CONNECT after the name moved to the metadata address = %d %q", resp.StatusCode, body)
	}
	// A name with one allowed and one forbidden address only ever dials the allowed one.
	res.set("flip.allowed.test", "169.254.169.254", "127.0.0.1")
	if resp, body, _ := p.connect(t, target); resp.StatusCode != 200 {
		t.Errorf("mixed answer = %d %q", resp.StatusCode, body)
	}
}

func TestNoConnectToProxyItself(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	res := newResolver("self.test", "127.0.0.1")
	p := startProxyOn(t, l, Config{
		Allow:        rules(t, hostPort("127.0.0.1", port), hostPort("self.test", port)),
		Resolve:      res.resolve,
		AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	for _, target := range []string{hostPort("127.0.0.1", port), hostPort("self.test", port)} {
		resp, body, _ := p.connect(t, target)
		if resp.StatusCode != 403 || !strings.Contains(body, ErrProxyItself.Error()) {
			t.Errorf("CONNECT %s = %d %q", target, resp.StatusCode, body)
		}
		get := fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		if resp, body := p.raw(t, get); resp.StatusCode != 403 || !strings.Contains(body, ErrProxyItself.Error()) {
			t.Errorf("GET via %s = %d %q", target, resp.StatusCode, body)
		}
	}
}

func TestCheckHello(t *testing.T) {
	name := target{host: "api.allowed.test", port: 443}
	ip := target{host: "10.0.0.1", ip: netip.MustParseAddr("10.0.0.1"), port: 443}
	cases := []struct {
		t    target
		sni  string
		exts []uint16
		ok   bool
	}{
		{name, "api.allowed.test", nil, true},
		{name, "API.Allowed.Test.", nil, true},
		{name, "", nil, false},
		{name, "evil.test", nil, false},
		{name, "api.allowed.test.evil.test", nil, false},
		{name, "api.allowed.test", []uint16{0, extensionECH}, false},
		{ip, "", nil, true},
		{ip, "", []uint16{extensionECH}, false},
	}
	for _, c := range cases {
		if err := checkHello(c.t, c.sni, c.exts); (err == nil) != c.ok || err != nil && !errors.Is(err, ErrHostMismatch) {
			t.Errorf("checkHello(%s, %q, %v) = %v, want ok=%v", c.t, c.sni, c.exts, err, c.ok)
		}
	}
}

func TestSNIMismatchRefused(t *testing.T) {
	up := newUpstream(t, true)
	res := newResolver("api.allowed.test", "127.0.0.1", "other.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{
		Allow:        rules(t, hostPort("api.allowed.test", up.port), hostPort("other.allowed.test", up.port)),
		Resolve:      res.resolve,
		AllowPrivate: loopback32,
	})
	cases := []struct{ sni, reason string }{
		{"other.allowed.test", "does not match CONNECT host"},
		{"", "has no SNI"},
	}
	for _, c := range cases {
		resp, _, conn := p.connect(t, hostPort("api.allowed.test", up.port))
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT = %d", resp.StatusCode)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: c.sni, RootCAs: getPKI(t).pool, InsecureSkipVerify: c.sni == ""})
		if err := tc.Handshake(); err == nil {
			t.Errorf("SNI %q: TLS through the tunnel succeeded", c.sni)
		}
		p.events.mustFind(t, KindDeny, c.reason)
	}
	if n := up.helloCount(); n != 0 {
		t.Errorf("upstream received %d ClientHellos from refused tunnels", n)
	}
	if len(up.requests()) != 0 {
		t.Error("upstream served a request through a refused tunnel")
	}
	// A tunnel to a name that does not start with TLS or HTTP is refused.
	_, _, conn := p.connect(t, hostPort("api.allowed.test", up.port))
	conn.Write([]byte("\x00\x01binary"))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("opaque stream to a host name was relayed")
	}
	// Plain HTTP inside a tunnel must name the CONNECT host.
	resp, _, conn := p.connect(t, hostPort("api.allowed.test", up.port))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: other.allowed.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 403 {
		t.Errorf("fronted HTTP in a tunnel: %v %v", resp, err)
	}
}

func TestHostHeaderMismatch(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver("api.allowed.test", "127.0.0.1", "evil.test", "127.0.0.1")
	p := startProxy(t, Config{Allow: rules(t, hostPort("api.allowed.test", up.port)), Resolve: res.resolve, AllowPrivate: loopback32})
	target := hostPort("api.allowed.test", up.port)
	for _, hdr := range []string{"Host: evil.test\r\n", "Host: " + hostPort("evil.test", up.port) + "\r\n", "Host: " + target + "\r\nHost: evil.test\r\n"} {
		resp, body := p.raw(t, fmt.Sprintf("GET http://%s/ HTTP/1.1\r\n%s\r\n", target, hdr))
		if resp.StatusCode == 200 {
			t.Errorf("Host header %q: forwarded (%q)", hdr, body)
		}
	}
	if len(up.requests()) != 0 {
		t.Errorf("fronted requests reached the upstream: %+v", up.requests())
	}
}

// credentialSetup runs a proxy with one substitution bound to bound.test
// and a second, unrelated one.
type credentialSetup struct {
	p                  *running
	bound, other       *upstream
	plainBound         *upstream
	secret, ph, ph2    string
	boundURL, otherURL string
}

func newCredentialSetup(t *testing.T, roots *x509.CertPool) *credentialSetup {
	t.Helper()
	s := &credentialSetup{bound: newUpstream(t, true), other: newUpstream(t, true), plainBound: newUpstream(t, false)}
	s.secret = "sk-live-REALSECRETvalue0123456789"
	s.ph = GeneratePlaceholder([]byte(s.secret))
	s.ph2 = GeneratePlaceholder([]byte("another-secret-not-for-bound"))
	res := newResolver("bound.test", "127.0.0.1", "other.allowed.test", "127.0.0.1")
	boundRules := rules(t, hostPort("bound.test", s.bound.port), hostPort("bound.test", s.plainBound.port))
	s.p = startProxy(t, Config{
		Allow: append(rules(t, hostPort("other.allowed.test", s.other.port), hostPort("other.allowed.test", s.plainBound.port)), boundRules...),
		Substitutions: []Substitution{
			{Placeholder: s.ph, Secret: []byte(s.secret), Hosts: boundRules},
			{Placeholder: s.ph2, Secret: []byte("another-secret-not-for-bound"), Hosts: rules(t, "nowhere.test")},
		},
		Resolve:       res.resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: roots,
	})
	s.boundURL = fmt.Sprintf("https://bound.test:%d", s.bound.port)
	s.otherURL = fmt.Sprintf("https://other.allowed.test:%d", s.other.port)
	return s
}

func TestCredentialSubstitution(t *testing.T) {
	s := newCredentialSetup(t, getPKI(t).pool)
	// The client trusts only the proxy's CA: the proxy terminates TLS.
	c := s.p.client(t, s.p.proxyPool(t))
	code, body, err := get(t, c, s.boundURL+"/v1/items", "Authorization", "Bearer "+s.ph, "X-Api-Key", s.ph)
	if err != nil || code != 200 || body != "upstream says hi to /v1/items" {
		t.Fatalf("GET bound = %d %q %v", code, body, err)
	}
	// Placeholder in URL user info becomes Basic credentials (a header).
	u := fmt.Sprintf("https://git:%s@bound.test:%d/repo.git", s.ph, s.bound.port)
	if code, _, err := get(t, c, u); err != nil || code != 200 {
		t.Fatalf("GET with user info = %d %v", code, err)
	}
	got := s.bound.requests()
	if len(got) != 2 {
		t.Fatalf("bound upstream saw %d requests", len(got))
	}
	if got[0].Authorization != "Bearer "+s.secret || got[0].Header.Get("X-Api-Key") != s.secret {
		t.Errorf("upstream did not receive the secret: %+v", got[0])
	}
	if user, pw, ok := (&http.Request{Header: got[1].Header}).BasicAuth(); !ok || user != "git" || pw != s.secret {
		t.Errorf("Basic credentials at upstream: %q %q %v", user, pw, ok)
	}
	for _, r := range got {
		if strings.Contains(fmt.Sprint(r), s.ph) {
			t.Errorf("placeholder reached the upstream: %+v", r)
		}
	}
	for _, ev := range s.p.events.list() {
		if strings.Contains(fmt.Sprint(ev), s.secret) {
			t.Errorf("event carries the secret: %+v", ev)
		}
	}
	s.p.events.mustFind(t, KindAllow, "TLS terminated")
}

// TestSecretNeverReturnsToSandbox: a server that echoes what it received
// must not hand the real secret back to the sandbox.
func TestSecretNeverReturnsToSandbox(t *testing.T) {
	s := newCredentialSetup(t, getPKI(t).pool)
	c := s.p.client(t, s.p.proxyPool(t))
	req, _ := http.NewRequest("GET", s.boundURL+"/echo", nil)
	req.Header.Set("Authorization", "Bearer "+s.ph)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "you sent Bearer "+s.ph || resp.Header.Get("X-Echo") != "Bearer "+s.ph {
		t.Fatalf("echoed response: %q, X-Echo %q", b, resp.Header.Get("X-Echo"))
	}
	if got := s.bound.requests(); len(got) != 1 || got[0].Authorization != "Bearer "+s.secret {
		t.Fatalf("upstream saw %+v", got)
	}
}

// TestSecretOnlyInHeadersOverHTTPS: the proxy refuses to put a secret in a
// URL (servers echo paths and queries) or on plain http (clear text).
func TestSecretOnlyInHeadersOverHTTPS(t *testing.T) {
	s := newCredentialSetup(t, getPKI(t).pool)
	c := s.p.client(t, s.p.proxyPool(t))
	for _, tc := range []struct {
		url     string
		headers []string
	}{
		{s.boundURL + "/v1/items?key=" + s.ph, nil},
		{s.boundURL + "/echo/" + s.ph, nil},
		{fmt.Sprintf("http://bound.test:%d/p", s.plainBound.port), []string{"Authorization", "token " + s.ph}},
	} {
		code, body, err := get(t, c, tc.url, tc.headers...)
		if err != nil || code != 403 || !strings.Contains(body, "only substituted in request headers over https") {
			t.Errorf("%s: %d %q %v", tc.url, code, body, err)
		}
	}
	if n := len(s.bound.requests()) + len(s.plainBound.requests()); n != 0 {
		t.Fatalf("upstreams saw %d requests", n)
	}
}

func TestSecretFilterAcrossReads(t *testing.T) {
	c := newCleaner([]secretEntry{{secret: "S3CRET", rep: "PLACEHOLDER-xyz"}, {secret: "longer-secret-value", rep: "p2"}})
	src := strings.Repeat("a", 100) + "S3CRET" + strings.Repeat("b", 7) + "longer-secret-value" + "S3CR"
	for chunk := 1; chunk <= 20; chunk++ {
		f := newSecretFilter(io.NopCloser(&chunkReader{s: src, n: chunk}), c, nil)
		got, err := io.ReadAll(f)
		want := strings.Repeat("a", 100) + "PLACEHOLDER-xyz" + strings.Repeat("b", 7) + "p2" + "S3CR"
		if err != nil || string(got) != want {
			t.Fatalf("chunk %d: %q %v", chunk, got, err)
		}
	}
}

type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[n:]
	return n, nil
}

func TestCredentialLeakBlocked(t *testing.T) {
	s := newCredentialSetup(t, getPKI(t).pool)
	c := s.p.client(t, getPKI(t).pool)
	// Plain HTTP to another allowed host.
	plain := fmt.Sprintf("http://other.allowed.test:%d/x?token=%s", s.plainBound.port, s.ph)
	code, body, err := get(t, c, plain)
	if err != nil || code != 403 || !strings.Contains(body, "credential placeholder") {
		t.Errorf("placeholder to another host: %d %q %v", code, body, err)
	}
	if strings.Contains(body, s.ph) || strings.Contains(body, s.secret) {
		t.Errorf("denial body reveals the placeholder or secret: %q", body)
	}
	// A placeholder bound elsewhere, sent to the bound host over terminated TLS.
	tc := s.p.client(t, s.p.proxyPool(t))
	code, _, err = get(t, tc, s.boundURL+"/", "Cookie", "s="+s.ph2)
	if err != nil || code != 403 {
		t.Errorf("foreign placeholder to bound host: %d %v", code, err)
	}
	// Plain HTTP inside a CONNECT tunnel to an unbound host.
	target := hostPort("other.allowed.test", s.plainBound.port)
	resp, _, conn := s.p.connect(t, target)
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT = %d", resp.StatusCode)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", target, s.ph)
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 403 {
		t.Errorf("placeholder in tunnelled HTTP: %v %v", resp, err)
	}
	if len(s.plainBound.requests()) != 0 || len(s.bound.requests()) != 0 {
		t.Error("a request carrying a misdirected placeholder reached an upstream")
	}
	ev := s.p.events.mustFind(t, KindLeak, "credential placeholder")
	if ev.Host != "other.allowed.test" {
		t.Errorf("leak event %+v", ev)
	}
	for _, ev := range s.p.events.list() {
		if strings.Contains(fmt.Sprint(ev), s.ph) || strings.Contains(fmt.Sprint(ev), s.secret) {
			t.Errorf("event carries a credential: %+v", ev)
		}
	}
}

func TestLeakInOpaqueTunnel(t *testing.T) {
	received := make(chan []byte, 1)
	sink := tcpServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		received <- b
	})
	ph := GeneratePlaceholder([]byte("opaque-secret-value-1234"))
	p := startProxy(t, Config{
		Allow:         rules(t, sink.String()),
		Substitutions: []Substitution{{Placeholder: ph, Secret: []byte("opaque-secret-value-1234"), Hosts: rules(t, "bound.test")}},
	})
	_, _, conn := p.connect(t, sink.String())
	conn.Write([]byte("HELO " + ph + "\r\n"))
	p.events.mustFind(t, KindLeak, "credential placeholder")
	select {
	case b := <-received:
		if strings.Contains(string(b), ph) {
			t.Error("placeholder relayed through an opaque tunnel")
		}
	case <-time.After(5 * time.Second):
		t.Error("tunnel not closed after the leak")
	}
}

// TestLeakLaterInOpaqueTunnel: a placeholder sent after harmless traffic,
// split across two writes, is still found.
func TestLeakLaterInOpaqueTunnel(t *testing.T) {
	received := make(chan []byte, 1)
	sink := tcpServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		received <- b
	})
	ph := GeneratePlaceholder([]byte("opaque-secret-value-1234"))
	p := startProxy(t, Config{
		Allow:         rules(t, sink.String()),
		Substitutions: []Substitution{{Placeholder: ph, Secret: []byte("opaque-secret-value-1234"), Hosts: rules(t, "bound.test")}},
	})
	_, _, conn := p.connect(t, sink.String())
	conn.Write([]byte("HELO harmless\r\n"))
	time.Sleep(50 * time.Millisecond)
	conn.Write([]byte("AUTH " + ph[:10]))
	time.Sleep(50 * time.Millisecond)
	conn.Write([]byte(ph[10:] + "\r\n"))
	p.events.mustFind(t, KindLeak, "credential placeholder")
	select {
	case b := <-received:
		if strings.Contains(string(b), ph) {
			t.Error("placeholder relayed through an opaque tunnel")
		}
	case <-time.After(5 * time.Second):
		t.Error("tunnel not closed after the leak")
	}
}

func TestUpstreamVerified(t *testing.T) {
	s := newCredentialSetup(t, x509.NewCertPool()) // roots that do not know the test CA
	c := s.p.client(t, s.p.proxyPool(t))
	code, body, err := get(t, c, s.boundURL+"/", "Authorization", "Bearer "+s.ph)
	if err != nil || code != 502 || !strings.Contains(body, "certificate") {
		t.Errorf("untrusted upstream: %d %q %v", code, body, err)
	}
	if len(s.bound.requests()) != 0 {
		t.Error("secret sent to an unverified upstream")
	}
}

func TestProxyCAIsConstrained(t *testing.T) {
	s := newCredentialSetup(t, getPKI(t).pool)
	leaf, err := s.p.ca.issue("other.allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Leaf.Verify(x509.VerifyOptions{Roots: s.p.proxyPool(t), DNSName: "other.allowed.test"})
	if err == nil {
		t.Error("proxy CA vouches for a host that is not bound")
	}
	good, _ := s.p.ca.leaf("bound.test")
	if _, err := good.Leaf.Verify(x509.VerifyOptions{Roots: s.p.proxyPool(t), DNSName: "bound.test"}); err != nil {
		t.Errorf("bound leaf does not verify: %v", err)
	}
	if again, _ := s.p.ca.leaf("bound.test"); again != good {
		t.Error("leaf certificates are not cached")
	}
}

func TestHeaderRule(t *testing.T) {
	bound, other := newUpstream(t, true), newUpstream(t, true)
	res := newResolver("bound.test", "127.0.0.1", "other.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{
		Allow:         rules(t, hostPort("bound.test", bound.port), hostPort("other.allowed.test", other.port)),
		Headers:       []HeaderRule{{Hosts: rules(t, hostPort("bound.test", bound.port)), Header: "Authorization", Value: "Bearer real-token"}},
		Resolve:       res.resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: getPKI(t).pool,
	})
	pool := p.proxyPool(t)
	pool.AddCert(mustParse(t, getPKI(t).leafDER)) // not a CA: the other host must still fail verification
	roots := getPKI(t).pool.Clone()
	roots.AppendCertsFromPEM(p.CACertPEM())
	c := p.client(t, roots)
	if code, _, err := get(t, c, fmt.Sprintf("https://bound.test:%d/", bound.port), "Authorization", "Bearer sandbox-guess"); err != nil || code != 200 {
		t.Fatalf("bound GET: %d %v", code, err)
	}
	if code, _, err := get(t, c, fmt.Sprintf("https://other.allowed.test:%d/", other.port)); err != nil || code != 200 {
		t.Fatalf("other GET: %d %v", code, err)
	}
	if got := bound.requests(); len(got) != 1 || got[0].Authorization != "Bearer real-token" || len(got[0].Header.Values("Authorization")) != 1 {
		t.Errorf("bound upstream saw %+v", got)
	}
	if got := other.requests(); len(got) != 1 || got[0].Authorization != "" {
		t.Errorf("header rule applied to another host: %+v", got)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSurvivesManyDenials(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver("api.allowed.test", "127.0.0.1", "meta.test", "169.254.169.254")
	p := startProxy(t, Config{
		Allow:        rules(t, hostPort("api.allowed.test", up.port), "meta.test"),
		Resolve:      res.resolve,
		AllowPrivate: loopback32,
	})
	c := p.client(t, nil)
	okURL := fmt.Sprintf("http://api.allowed.test:%d/", up.port)
	if code, _, err := get(t, c, okURL); err != nil || code != 200 {
		t.Fatalf("warm-up: %d %v", code, err)
	}
	c.Transport.(*http.Transport).CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()

	requests := []string{
		"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",
		"CONNECT meta.test:443 HTTP/1.1\r\nHost: meta.test:443\r\n\r\n",
		"GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
	}
	var wg sync.WaitGroup
	var failed sync.Once
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 8 {
				if err := deniedOnce(p.addr, requests[i%len(requests)]); err != nil {
					failed.Do(func() { t.Errorf("denial %d: %v", i, err) })
				}
			}
		}()
	}
	wg.Wait()
	if code, _, err := get(t, c, okURL); err != nil || code != 200 {
		t.Fatalf("after 1000 denials: %d %v", code, err)
	}
	c.Transport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("goroutines: %d before, %d after 1000 denials", before, after)
	}
	denials := 0
	for _, ev := range p.events.list() {
		if ev.Kind == KindDeny {
			denials++
		}
	}
	if denials != 1000 {
		t.Errorf("%d deny events for 1000 denials", denials)
	}
}

func deniedOnce(addr, request string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 403 && resp.StatusCode != 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func TestHeaderSizeLimit(t *testing.T) {
	up := newUpstream(t, false)
	res := newResolver("api.allowed.test", "127.0.0.1")
	p := startProxy(t, Config{Allow: rules(t, hostPort("api.allowed.test", up.port)), Resolve: res.resolve, AllowPrivate: loopback32, MaxHeaderBytes: 4096})
	target := hostPort("api.allowed.test", up.port)
	small := fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-Pad: %s\r\n\r\n", target, target, strings.Repeat("a", 2000))
	if resp, body := p.raw(t, small); resp.StatusCode != 200 {
		t.Fatalf("request under the limit: %d %q", resp.StatusCode, body)
	}
	big := fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nX-Pad: %s\r\n\r\n", target, target, strings.Repeat("a", 64<<10))
	resp, body := p.raw(t, big)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "request header too large") {
		t.Errorf("oversized header: %d %q", resp.StatusCode, body)
	}
	if len(up.requests()) != 1 {
		t.Errorf("upstream saw %d requests, want 1", len(up.requests()))
	}
}

func TestIdleTimeout(t *testing.T) {
	echo := tcpServer(t, func(c net.Conn) { io.Copy(c, c) })
	p := startProxy(t, Config{Allow: rules(t, echo.String()), IdleTimeout: 300 * time.Millisecond})
	// A silent client is dropped.
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle client: read returned %v, want EOF", err)
	}
	// A tunnel with traffic outlives the idle timeout.
	_, _, conn := p.connect(t, echo.String())
	buf := make([]byte, 4)
	for start := time.Now(); time.Since(start) < time.Second; {
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatalf("active tunnel closed: %v", err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("active tunnel closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Then, once quiet, it is closed.
	if _, err := conn.Read(buf); err == nil {
		t.Error("quiet tunnel still open")
	}
}

func TestMaxConns(t *testing.T) {
	p := startProxy(t, Config{MaxConns: 2})
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	resp, body := p.raw(t, "")
	if resp.StatusCode != 503 || !strings.Contains(body, "too many connections") {
		t.Errorf("third connection: %d %q", resp.StatusCode, body)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := rules(t, "bound.test")
	bad := []Config{
		{Allow: []Rule{{Host: "bad host"}}},
		{Substitutions: []Substitution{{Placeholder: "short", Secret: []byte("s3cret"), Hosts: good}}},
		{Substitutions: []Substitution{{Placeholder: "placeholder-1", Secret: []byte("a\r\nb"), Hosts: good}}},
		{Substitutions: []Substitution{{Placeholder: "placeholder-1", Secret: []byte("x"), Hosts: nil}}},
		{Substitutions: []Substitution{{Placeholder: "place holder", Secret: []byte("x"), Hosts: good}}},
		{Headers: []HeaderRule{{Hosts: good, Header: "Host", Value: "x"}}},
		{Headers: []HeaderRule{{Hosts: good, Header: "Bad Name", Value: "x"}}},
		{Headers: []HeaderRule{{Hosts: good, Header: "Authorization", Value: "a\nb"}}},
	}
	for i, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	p, err := New(Config{})
	if err != nil || p.CACertPEM() != nil {
		t.Errorf("plain proxy: %v, CA %v", err, p.CACertPEM() != nil)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	c, err := net.Dial("tcp", l.Addr().String()) // an open client connection must not hold Serve
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	p.Close()
	if err := p.Serve(context.Background(), l); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
}

// tcpServer runs handle for every connection on a loopback listener.
func tcpServer(t testing.TB, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}
