package egress

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// socksRaw sends one SOCKS5 CONNECT-style request with command cmd for
// host:port and returns the reply code.
func socksRaw(t *testing.T, proxy string, cmd byte, host string, port int) (byte, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	var greet [2]byte
	if _, err := io.ReadFull(c, greet[:]); err != nil || greet != [2]byte{5, 0} {
		t.Fatalf("greeting: %v %v", greet, err)
	}
	req := []byte{5, cmd, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = append(req, byte(port>>8), byte(port))
	c.Write(req)
	var reply [10]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		t.Fatalf("reply: %v", err)
	}
	return reply[1], c
}

func TestSOCKS5(t *testing.T) {
	up := newUpstream(t, true)
	res := newResolver("api.allowed.test", "127.0.0.1", "evil.test", "127.0.0.1", "meta.allowed.test", "169.254.169.254")
	p := startProxy(t, Config{
		Allow:        rules(t, hostPort("api.allowed.test", up.port), hostPort("meta.allowed.test", up.port)),
		Resolve:      res.resolve,
		AllowPrivate: loopback32,
	})
	pu, _ := url.Parse("socks5://" + p.addr)
	tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: getPKI(t).pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if code, body, err := get(t, c, fmt.Sprintf("https://api.allowed.test:%d/socks", up.port)); err != nil || code != 200 {
		t.Fatalf("GET via SOCKS5: %d %q %v", code, body, err)
	}
	p.events.mustFind(t, KindAllow, "SNI checked")

	cases := []struct {
		host string
		cmd  byte
		want byte
	}{
		{"evil.test", 1, socksNotAllowed},
		{"meta.allowed.test", 1, socksNotAllowed},
		{"api.allowed.test", 3, socksCmdUnsupported}, // UDP ASSOCIATE
		{"api.allowed.test", 2, socksCmdUnsupported}, // BIND
	}
	for _, tc := range cases {
		if code, _ := socksRaw(t, p.addr, tc.cmd, tc.host, up.port); code != tc.want {
			t.Errorf("SOCKS5 cmd %d to %s: reply %d, want %d", tc.cmd, tc.host, code, tc.want)
		}
	}
	p.events.mustFind(t, KindDeny, "host not in allowlist: evil.test")
	p.events.mustFind(t, KindDeny, "169.254.169.254")
	p.events.mustFind(t, KindDeny, "no UDP")
	for _, ev := range p.events.list() {
		if ev.Kind == KindDeny && ev.Method != "SOCKS5" {
			t.Errorf("deny event with method %q", ev.Method)
		}
	}

	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", p.addr, "-k",
			fmt.Sprintf("https://api.allowed.test:%d/curl", up.port)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "upstream says hi to /curl") {
			t.Errorf("curl --socks5-hostname: %v: %s", err, out)
		}
	}
}
