package egress

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNames are the names the upstream test certificate covers.
var testNames = []string{
	"api.allowed.test", "other.allowed.test", "bound.test", "a.wild.test", "deep.a.wild.test",
}

// testPKI is a throwaway CA and a leaf for the upstream test servers.
type testPKI struct {
	pool    *x509.CertPool
	caPEM   []byte
	leaf    tls.Certificate
	leafDER []byte
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki = newTestPKI() })
	return pki
}

func newTestPKI() *testPKI {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "egress test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "upstream"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: testNames,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:    pool,
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:    tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
		leafDER: leafDER,
	}
}

// seen is what an upstream server observed of one request.
type seen struct {
	Host, URL, Authorization string
	Header                   http.Header
}

// upstream is a test server on 127.0.0.1 that records the requests it gets.
type upstream struct {
	*httptest.Server
	port   int
	mu     sync.Mutex
	reqs   []seen
	hellos int // TLS ClientHellos received
	// answer, when set, writes the response (after the request is recorded).
	answer http.HandlerFunc
}

func (u *upstream) handle(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{Host: r.Host, URL: r.URL.String(), Authorization: r.Header.Get("Authorization"), Header: r.Header.Clone()})
	u.mu.Unlock()
	io.Copy(io.Discard, r.Body)
	if u.answer != nil {
		u.answer(w, r)
		return
	}
	if r.URL.Path == "/echo" { // a server that reflects what it was sent
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "you sent %s", r.Header.Get("Authorization"))
		return
	}
	fmt.Fprintf(w, "upstream says hi to %s", r.URL.Path)
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) helloCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hellos
}

func newUpstream(t testing.TB, useTLS bool) *upstream {
	t.Helper()
	return newAnswering(t, useTLS, nil)
}

// newAnswering starts an upstream whose responses answer writes.
func newAnswering(t testing.TB, useTLS bool, answer http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{answer: answer}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.handle))
	u.Config.ErrorLog = log.New(io.Discard, "", 0) // refused tunnels make expected handshake noise
	if useTLS {
		u.TLS = &tls.Config{
			Certificates: []tls.Certificate{getPKI(t).leaf},
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				u.mu.Lock()
				u.hellos++
				u.mu.Unlock()
				return nil, nil
			},
		}
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	u.port = u.Listener.Addr().(*net.TCPAddr).Port
	return u
}

// resolver maps test names to addresses; it can change its answers between
// lookups.
type resolver struct {
	mu    sync.Mutex
	names map[string][]netip.Addr
	calls int
}

func newResolver(pairs ...string) *resolver {
	r := &resolver{names: make(map[string][]netip.Addr)}
	for i := 0; i+1 < len(pairs); i += 2 {
		r.set(pairs[i], pairs[i+1])
	}
	return r
}

func (r *resolver) set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	r.names[name] = ips
}

func (r *resolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if ips, ok := r.names[host]; ok {
		return ips, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

// events records proxy events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.all...)
}

// find returns the first event of kind whose reason contains substr.
func (e *events) find(kind, substr string) (Event, bool) {
	for _, ev := range e.list() {
		if ev.Kind == kind && strings.Contains(ev.Reason, substr) {
			return ev, true
		}
	}
	return Event{}, false
}

func (e *events) mustFind(t testing.TB, kind, substr string) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ev, ok := e.find(kind, substr); ok {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event with reason containing %q; events: %+v", kind, substr, e.list())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running is a proxy serving on 127.0.0.1.
type running struct {
	*Proxy
	addr   string
	events *events
}

// startProxy serves cfg on a loopback listener until the test ends.
func startProxy(t testing.TB, cfg Config) *running {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startProxyOn(t, l, cfg)
}

// startProxyOn serves cfg on l until the test ends.
func startProxyOn(t testing.TB, l net.Listener, cfg Config) *running {
	t.Helper()
	ev := &events{}
	prev := cfg.OnEvent
	cfg.OnEvent = func(e Event) {
		ev.add(e)
		if prev != nil {
			prev(e)
		}
	}
	p, err := New(cfg)
	if err != nil {
		l.Close()
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		p.Close()
	})
	return &running{Proxy: p, addr: l.Addr().String(), events: ev}
}

// client returns an HTTP client that uses the proxy and trusts roots.
func (r *running) client(t testing.TB, roots *x509.CertPool) *http.Client {
	t.Helper()
	pu, _ := url.Parse("http://" + r.addr)
	tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// proxyPool returns a pool trusting the proxy's CA.
func (r *running) proxyPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.CACertPEM()) {
		t.Fatal("proxy has no CA certificate")
	}
	return pool
}

// bufConn is a client connection whose reads go through the reader that
// parsed the proxy's CONNECT answer.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// connect opens a raw CONNECT tunnel to target and returns the proxy's
// answer and the connection.
func (r *running) connect(t testing.TB, target string) (*http.Response, string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	var body string
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
	}
	return resp, body, &bufConn{Conn: c, r: br}
}

// raw sends a raw request to the proxy and returns its answer.
func (r *running) raw(t testing.TB, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func mustRule(t testing.TB, s string) Rule {
	t.Helper()
	r, err := ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rules(t testing.TB, entries ...string) []Rule {
	t.Helper()
	var out []Rule
	for _, e := range entries {
		out = append(out, mustRule(t, e))
	}
	return out
}

var loopback32 = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// newGet builds a GET of u with the given header name/value pairs.
func newGet(t testing.TB, u string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// get performs a GET through c and returns status and body.
func get(t testing.TB, c *http.Client, u string, hdr ...string) (int, string, error) {
	t.Helper()
	resp, err := c.Do(newGet(t, u, hdr...))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
