// Package egressnet holds the pieces every backend needs to give a sandbox
// an egress allowlist: the proxy built from the policy, a listening socket
// opened inside the sandbox's network namespace (so the proxy is reachable
// at 127.0.0.1 there and nothing else is), the environment that points
// ordinary tools at it, and the trust bundle that extends the host's with
// the proxy's CA when secrets are substituted.
package egressnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/policy"
)

// Port is where the egress proxy listens inside a sandbox.
const Port = 3128

// CABundlePath is the system trust store inside a sandbox; with secret
// substitution kavach binds an extended copy over it.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// HostCABundle is the host's trust store that the sandbox's copy extends.
var HostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// ErrNamespace reports a network namespace that could not be entered or
// left. When leaving fails, the thread that tried is discarded.
var ErrNamespace = errors.New("egressnet: network namespace")

// NewProxy builds the egress proxy of an allowlist policy from its rules
// and the backend's egress settings.
func NewProxy(p *policy.Policy, e backend.Egress) (*egress.Proxy, error) {
	rules := make([]egress.Rule, 0, len(p.Network.Allow))
	for _, a := range p.Network.Allow {
		r, err := egress.ParseRule(a)
		if err != nil {
			return nil, fmt.Errorf("network.allow: %w", err)
		}
		rules = append(rules, r)
	}
	proxy, err := egress.New(egress.Config{
		Allow: rules, Substitutions: e.Substitutions, Resolve: e.Resolve,
		AllowPrivate: e.AllowPrivate, UpstreamRoots: e.UpstreamRoots, OnEvent: e.OnEvent,
	})
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	return proxy, nil
}

// WriteCABundle writes the host's trust store followed by ca (PEM) to
// dir/ca-certificates.crt and returns its path. The file is world-readable:
// it holds only public certificates.
func WriteCABundle(dir string, ca []byte) (string, error) {
	host, err := os.ReadFile(HostCABundle)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("egressnet: read host trust store: %w", err)
	}
	p := filepath.Join(dir, "ca-certificates.crt")
	if err := os.WriteFile(p, append(append(host, '\n'), ca...), 0o644); err != nil {
		return "", fmt.Errorf("egressnet: write trust bundle: %w", err)
	}
	return p, nil
}

// Env is what ordinary tools need to find the proxy at addr ("ip:port"),
// and, when caBundle is set, to trust the proxy's CA at CABundlePath.
func Env(addr string, caBundle bool) []string {
	url := "http://" + addr
	env := []string{
		"HTTP_PROXY=" + url, "HTTPS_PROXY=" + url, "ALL_PROXY=" + url,
		"http_proxy=" + url, "https_proxy=" + url, "all_proxy=" + url,
		"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
	}
	if caBundle {
		env = append(env, "SSL_CERT_FILE="+CABundlePath, "REQUESTS_CA_BUNDLE="+CABundlePath,
			"CURL_CA_BUNDLE="+CABundlePath, "NODE_EXTRA_CA_CERTS="+CABundlePath, "GIT_SSL_CAINFO="+CABundlePath)
	}
	return env
}

// LoopbackAddr is the proxy's address inside a sandbox that shares the
// kernel's loopback with kavach's listener.
func LoopbackAddr() string { return "127.0.0.1:" + strconv.Itoa(Port) }

// ListenInNetns opens a TCP listener on ip:port inside the network
// namespace at nsPath (e.g. /proc/<pid>/ns/net), first bringing that
// namespace's loopback interface up if it is down (a fresh namespace has
// it down and 127.0.0.1 unassigned). It needs CAP_SYS_ADMIN over the
// namespace's owning user namespace. It refuses the caller's own network
// namespace: the listener is meant to be reachable only inside the
// sandbox. The socket stays bound to the namespace it was created in after
// the thread returns to its own.
func ListenInNetns(nsPath string, ip [4]byte, port int) (net.Listener, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrNamespace, nsPath, err)
	}
	defer target.Close()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	// A dedicated goroutine: if it cannot return to its namespace it exits
	// still locked, and Go discards the thread.
	go func() {
		goruntime.LockOSThread()
		fd, restored, err := listenOnThread(int(target.Fd()), ip, port)
		ch <- result{fd, err}
		if restored {
			goruntime.UnlockOSThread()
		}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	f := os.NewFile(uintptr(r.fd), "egress-listener")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("egressnet: listener: %w", err)
	}
	return l, nil
}

// listenOnThread runs on a locked thread: enter the namespace, open the
// socket, return. restored is false when the thread is left in the target
// namespace and must die with its goroutine.
func listenOnThread(target int, ip [4]byte, port int) (fd int, restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return -1, true, fmt.Errorf("%w: open own: %w", ErrNamespace, err)
	}
	defer self.Close()
	same, err := sameFile(int(self.Fd()), target)
	switch {
	case err != nil:
		return -1, true, err
	case same:
		return -1, true, fmt.Errorf("%w: target is kavach's own network namespace", ErrNamespace)
	}
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return -1, true, fmt.Errorf("%w: enter: %w", ErrNamespace, err)
	}
	if err = loopbackUp(); err == nil {
		fd, err = listenTCP(ip, port)
	}
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
		if err == nil {
			unix.Close(fd)
		}
		return -1, false, fmt.Errorf("%w: return to own namespace: %w", ErrNamespace, rerr)
	}
	return fd, true, err
}

// sameFile reports whether two descriptors refer to the same inode (for
// nsfs files: the same namespace).
func sameFile(a, b int) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		return false, fmt.Errorf("%w: stat own: %w", ErrNamespace, err)
	}
	if err := unix.Fstat(b, &sb); err != nil {
		return false, fmt.Errorf("%w: stat target: %w", ErrNamespace, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// loopbackUp brings the current thread's network namespace's loopback
// interface up when it is down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("egressnet: loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("egressnet: loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("egressnet: loopback: get flags: %w", err)
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("egressnet: loopback: set up: %w", err)
	}
	return nil
}

// listenTCP opens a close-on-exec listening TCP socket on ip:port (plain
// TCP, never MPTCP).
func listenTCP(ip [4]byte, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("egressnet: socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: ip}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("egressnet: bind %v:%d: %w", net.IP(ip[:]), port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("egressnet: listen: %w", err)
	}
	return fd, nil
}
