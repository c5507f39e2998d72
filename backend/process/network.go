package process

import (
	"context"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/egressnet"
	"github.com/kavach-sandbox/kavach/policy"
)

// Allowlist networking. The sandbox keeps its own network namespace with
// only loopback; its init opens a listening socket on 127.0.0.1:proxyPort
// there and hands it to kavach, which serves the egress proxy on it from
// the host side. Ordinary tools find the proxy through the *_PROXY
// variables; code that ignores them has no route anywhere else.

// proxyPort is where the egress proxy listens inside the sandbox.
const proxyPort = egressnet.Port

// caBundlePath is the system trust store inside the sandbox. With secret
// substitution, kavach's per-sandbox CA is added to it.
const caBundlePath = egressnet.CABundlePath

// newProxy creates the egress proxy of an allowlist policy, and the CA
// bundle file when the proxy terminates TLS for secret substitution.
func (in *instance) newProxy() error {
	p := &in.spec.Policy
	if p.Network.Mode != policy.NetworkAllowlist {
		return nil
	}
	proxy, err := egressnet.NewProxy(p, in.spec.Egress)
	if err != nil {
		return err
	}
	in.proxy = proxy
	if ca := proxy.CACertPEM(); len(ca) > 0 {
		in.caBundle, err = egressnet.WriteCABundle(in.dir, ca)
		return err
	}
	return nil
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
	return egressnet.Env(egressnet.LoopbackAddr(), in.caBundle != "")
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
