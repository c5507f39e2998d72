package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/egressnet"
	"github.com/kavach-sandbox/kavach/policy"
)

// Allowlist networking. The container keeps its own network namespace with
// only loopback. Once its init runs, kavach enters that namespace on a
// locked thread, opens a listening socket on 127.0.0.1:3128 there and
// serves the egress proxy on it from the host side. The *_PROXY variables
// of every exec point at it; code that ignores them has no route anywhere
// else.
//
// gVisor: runsc runs with --network=host, so the sentry hands socket calls
// to the host kernel; the sandbox process runs in the new network namespace
// the bundle asks for (loopback only, brought up by ListenInNetns), and
// c.init is that process. gVisor's own netstack, with its private loopback,
// is not used.

// caBundleFile is the extended trust store's name in the bundle directory.
const caBundleFile = "ca-certificates.crt"

// allowlistUnsupported says why this runtime cannot serve the proxy for a
// container, or "" when it can.
func allowlistUnsupported(rt *Runtime) string {
	if rt.rootless || !hasCapSysAdmin() {
		return "kavach lacks CAP_SYS_ADMIN, needed to enter the container's network namespace and open the proxy's socket there; the network is off instead"
	}
	return ""
}

// hasCapSysAdmin reports whether this process holds CAP_SYS_ADMIN in its
// effective set.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}

// setupProxy creates the egress proxy of an allowlist policy before the
// container starts, and the bind mount of the extended trust store when
// the proxy substitutes secrets. It returns the extra mounts.
func (c *Container) setupProxy(bundleDir string) ([]specs.Mount, error) {
	proxy, err := egressnet.NewProxy(&c.spec.Policy, c.spec.Egress)
	if err != nil {
		return nil, err
	}
	c.proxy = proxy
	if len(proxy.CACertPEM()) == 0 || !c.hasTrustStore() {
		return nil, nil
	}
	c.caBundle = true
	return []specs.Mount{{Destination: egressnet.CABundlePath, Type: "bind",
		Source: filepath.Join(bundleDir, caBundleFile), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}}, nil
}

// writeCABundle writes the extended trust store into the bundle (after
// the bundle directory exists, before the runtime mounts it).
func (c *Container) writeCABundle() error {
	if !c.caBundle {
		return nil
	}
	_, err := egressnet.WriteCABundle(c.bundle.Dir, c.proxy.CACertPEM())
	return err
}

// serveProxy opens the proxy's socket in the running container's network
// namespace (under gVisor: the sandbox process's) and serves the proxy on
// it until Destroy. ListenInNetns refuses kavach's own namespace, so a
// container that shares the host's network never passes for confined.
func (c *Container) serveProxy() error {
	ns := "/proc/" + strconv.Itoa(c.init) + "/ns/net"
	l, err := egressnet.ListenInNetns(ns, [4]byte{127, 0, 0, 1}, egressnet.Port)
	if err != nil {
		return fmt.Errorf("egress listener: %w", err)
	}
	c.proxyLn = l
	go func() { _ = c.proxy.Serve(context.Background(), l) }()
	return nil
}

// proxyEnv is the environment that points tools at the proxy (nil without
// one).
func (c *Container) proxyEnv() []string {
	if c.proxyLn == nil {
		return nil
	}
	return egressnet.Env(egressnet.LoopbackAddr(), c.caBundle)
}

// closeProxy stops the proxy and closes its listener.
func (c *Container) closeProxy() {
	if c.proxy != nil {
		_ = c.proxy.Close()
	}
	if c.proxyLn != nil {
		_ = c.proxyLn.Close()
	}
}

// hostStack reports whether runsc hands the sandbox's socket calls to the
// host kernel (--network=host): with the host's network, and with an
// allowlist, where the kernel is that of the container's own namespace.
func (c *Container) hostStack() bool {
	return c.spec.Policy.Network.Mode == policy.NetworkOn || c.proxy != nil
}

// wantsAllowlist reports whether the policy restricts the network to an
// allowlist.
func wantsAllowlist(p *policy.Policy) bool { return p.Network.Mode == policy.NetworkAllowlist }

// hasTrustStore reports whether the root has a system trust store to bind
// the extended one over (an image may have none; the runtime would create
// the mount point in the shared image cache).
func (c *Container) hasTrustStore() bool {
	if c.image == nil {
		return true
	}
	r, err := os.OpenRoot(c.image.RootFS)
	if err != nil {
		return false
	}
	defer r.Close()
	fi, err := r.Stat(strings.TrimPrefix(egressnet.CABundlePath, "/"))
	return err == nil && fi.Mode().IsRegular()
}
