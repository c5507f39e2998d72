package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/policy"
)

// Allowlist networking. The sandbox keeps its own network namespace with
// only loopback; its init opens a listening socket on 127.0.0.1:proxyPort
// there and hands it to kavach, which serves the egress proxy on it from
// the host side. Ordinary tools find the proxy through the *_PROXY
// variables; code that ignores them has no route anywhere else.

// proxyPort is where the egress proxy listens inside the sandbox.
const proxyPort = 3128

// caBundlePath is the system trust store inside the sandbox. With secret
// substitution, kavach's per-sandbox CA is added to it.
const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// hostCABundle is the host's trust store that the sandbox bundle extends.
var hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// newProxy creates the egress proxy of an allowlist policy, and the CA
// bundle file when the proxy terminates TLS for secret substitution.
func (in *instance) newProxy() error {
	p := &in.spec.Policy
	if p.Network.Mode != policy.NetworkAllowlist {
		return nil
	}
	rules := make([]egress.Rule, 0, len(p.Network.Allow))
	for _, a := range p.Network.Allow {
		r, err := egress.ParseRule(a)
		if err != nil {
			return fmt.Errorf("network.allow: %w", err)
		}
		rules = append(rules, r)
	}
	e := in.spec.Egress
	proxy, err := egress.New(egress.Config{
		Allow: rules, Substitutions: e.Substitutions, Resolve: e.Resolve,
		AllowPrivate: e.AllowPrivate, UpstreamRoots: e.UpstreamRoots, OnEvent: e.OnEvent,
	})
	if err != nil {
		return fmt.Errorf("egress proxy: %w", err)
	}
	in.proxy = proxy
	if ca := proxy.CACertPEM(); len(ca) > 0 {
		return in.writeCABundle(ca)
	}
	return nil
}

func (in *instance) writeCABundle(ca []byte) error {
	host, err := os.ReadFile(hostCABundle)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read host trust store: %w", err)
	}
	bundle := append(append(host, '\n'), ca...)
	in.caBundle = filepath.Join(in.dir, "ca-certificates.crt")
	return os.WriteFile(in.caBundle, bundle, 0o644)
}

// serveProxy serves the egress proxy on the listener the init sent.
func (in *instance) serveProxy(f *os.File) error {
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("egress listener: %w", err)
	}
	if in.proxyLn != nil {
		in.proxyLn.Close() // the listener of a replaced init: its namespace is gone
	}
	in.proxyLn = l
	go func() { _ = in.proxy.Serve(context.Background(), l) }()
	return nil
}

// proxyEnv is what ordinary tools need to find the proxy and trust its CA.
func (in *instance) proxyEnv() []string {
	if in.proxy == nil {
		return nil
	}
	url := "http://127.0.0.1:" + strconv.Itoa(proxyPort)
	env := []string{
		"HTTP_PROXY=" + url, "HTTPS_PROXY=" + url, "ALL_PROXY=" + url,
		"http_proxy=" + url, "https_proxy=" + url, "all_proxy=" + url,
		"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
	}
	if in.caBundle != "" {
		env = append(env, "SSL_CERT_FILE="+caBundlePath, "REQUESTS_CA_BUNDLE="+caBundlePath,
			"CURL_CA_BUNDLE="+caBundlePath, "NODE_EXTRA_CA_CERTS="+caBundlePath, "GIT_SSL_CAINFO="+caBundlePath)
	}
	return env
}

// listenProxy runs in the init: it opens the proxy's listening socket in
// the sandbox's network namespace (close-on-exec: payloads never hold it).
func listenProxy(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
