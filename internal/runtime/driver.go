package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/ocibundle"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// cgroupParent is the cgroup directory (in every hierarchy) under which the
// runtimes create kavach's container cgroups.
const cgroupParent = "/kavach-oci"

// Driver is a backend.Driver that runs sandboxes as containers of the first
// usable runtime among its kinds.
type Driver struct {
	name  backend.Name
	kinds []Kind
	// image is an OCI image layout used as every container's root.
	image string

	mu    sync.Mutex
	rt    *Runtime
	avail *backend.Availability
}

// NewDriver returns a driver for backend name that uses the first of kinds
// that works on this host.
func NewDriver(name backend.Name, kinds ...Kind) *Driver {
	return &Driver{name: name, kinds: kinds}
}

// WithImage makes every container of d run on the root of the OCI image
// layout at layout (unpacked once into ImageCacheDir) instead of the
// host's system view, and returns d. Call it before the first Create.
func (d *Driver) WithImage(layout string) *Driver {
	d.image = layout
	return d
}

// ImageCacheDir holds unpacked image roots, one per manifest digest.
func ImageCacheDir() string { return filepath.Join(StateDir(), "images") }

// CleanupStale removes what dead kavach processes left under any runtime
// (see SweepStale).
func (d *Driver) CleanupStale(ctx context.Context) { SweepStale(ctx) }

// Info describes the backend.
func (d *Driver) Info() backend.Info {
	i, _ := backend.InfoOf(d.name)
	return i
}

// Probe detects the runtimes in order of preference and reports the first
// that starts a container, or why none does. The answer is cached.
func (d *Driver) Probe(ctx context.Context) backend.Availability {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.avail != nil {
		return *d.avail
	}
	var reasons []string
	for _, k := range d.kinds {
		rt, err := Detect(ctx, k)
		if err == nil {
			d.rt = rt
			d.avail = &backend.Availability{Available: true, Reason: describe(rt)}
			return *d.avail
		}
		if ctx.Err() != nil {
			return backend.Availability{Reason: err.Error()}
		}
		reasons = append(reasons, err.Error())
	}
	d.avail = &backend.Availability{Reason: strings.Join(reasons, "; ")}
	return *d.avail
}

// describe says how a working runtime runs.
func describe(rt *Runtime) string {
	s := fmt.Sprintf("%s (%s)", rt.kind, rt.path)
	switch {
	case rt.kind == Runsc:
		s += ", platform " + rt.platform
	case rt.HybridWorkaround():
		s += ", hybrid-cgroup workaround"
	}
	if rt.rootless {
		s += ", rootless"
	}
	return s
}

// Runtime returns the runtime in use (nil before a successful Probe).
func (d *Driver) Runtime() *Runtime {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rt
}

// Capabilities are the layers a container backend enforces: any seccomp
// profile, a read-only root, no network; resource limits and the egress
// allowlist when kavach runs as root (cgroups; entering the container's
// network namespace, for runsc the sandbox's: see egress.go).
func (d *Driver) Capabilities() score.Layers {
	c := backend.FullCapabilities()
	rootless := os.Geteuid() != 0
	if rt := d.Runtime(); rt != nil {
		rootless = rt.rootless
	}
	if rootless {
		c &^= score.Limits
	}
	if rootless || !hasCapSysAdmin() {
		c &^= score.NetworkAllowlist
	}
	return c
}

// Create starts a container for spec.
func (d *Driver) Create(ctx context.Context, spec *backend.Spec) (backend.Instance, error) {
	if a := d.Probe(ctx); !a.Available {
		return nil, fmt.Errorf("%w: %s: %s", backend.ErrUnavailable, d.name, a.Reason)
	}
	rt := d.Runtime()
	p := &spec.Policy
	asked := score.Asked(p)
	enf := backend.Enforcement{Lost: map[string]string{}}
	filter, err := seccomp.OCI(seccomp.Profile(p.Seccomp.String()), p.SeccompAllow)
	if err != nil {
		if !spec.BestEffort {
			return nil, fmt.Errorf("%s: seccomp: %w", d.name, err)
		}
		enf.Lost[seccompModifier(p.Seccomp)] = err.Error()
		filter = nil
	}
	c := &Container{rt: rt, id: ContainerID(spec.ID), spec: spec}
	cfg := bundleConfig(rt, c, filter)
	if d.image != "" {
		if err := c.useImage(ctx, d.image, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
	}
	if wantsAllowlist(p) {
		if c.allowlistLost = allowlistUnsupported(rt); c.allowlistLost == "" {
			extra, err := c.setupProxy(cfg.Dir)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.name, err)
			}
			cfg.Extra = append(cfg.Extra, extra...)
		}
	}
	c.filtered, c.helper = filter != nil, needsHelper(rt)
	if c.image == nil && c.staticInit() {
		cfg.Args = []string{imageInitPath}
	}
	if c.helper || c.staticInit() {
		extra, err := helperMounts(cfg.Dir)
		if err != nil {
			c.closeProxy()
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		cfg.Extra = append(cfg.Extra, extra...)
	}
	if err := c.start(ctx, cfg); err != nil {
		derr := c.Destroy(context.WithoutCancel(ctx))
		return nil, errors.Join(fmt.Errorf("%s: start container: %w", d.name, err), derr)
	}
	c.enf = enforcement(c, asked, filter != nil, enf)
	return c, nil
}

// bundleConfig is the bundle of container c.
func bundleConfig(rt *Runtime, c *Container, filter *specs.LinuxSeccomp) *ocibundle.Config {
	cfg := &ocibundle.Config{
		Dir: filepath.Join(BundleDir(), c.id), Policy: &c.spec.Policy, Env: c.spec.Env, Args: initArgs,
		Seccomp: filter, Rootless: rt.rootless, PidsAsRlimit: rt.kind == Runsc,
	}
	if !rt.rootless {
		cfg.CgroupsPath = cgroupParent + "/" + c.id
	}
	return cfg
}

// needsHelper reports whether the exec helper is mounted: in every gVisor
// container, where exec'd commands load the seccomp filter and receive
// secret descriptors through it (see seccompexec.go).
func needsHelper(rt *Runtime) bool { return rt.kind == Runsc }

func seccompModifier(profile policy.SeccompProfile) string {
	if profile == policy.SeccompBasic {
		return score.ModSeccompBasic
	}
	return score.ModSeccompStrict
}

// enforcement reports what the runtime really applied, reading limits back
// from the container's cgroups.
func enforcement(c *Container, asked score.Layers, filtered bool, enf backend.Enforcement) backend.Enforcement {
	p := &c.spec.Policy
	got := asked & (score.Filesystem | score.NetworkOff)
	if filtered {
		got |= score.SeccompLayer(p.Seccomp)
	}
	wantsProxy := asked.Has(score.NetworkAllowlist)
	switch {
	case wantsProxy && c.proxyLn != nil && c.rt.kind == Runsc:
		got |= score.NetworkAllowlist
		enf.Notes = append(enf.Notes, "egress proxy on 127.0.0.1:3128 inside the gVisor sandbox's own network namespace (loopback only)",
			"gVisor's netstack is bypassed (--network=host): socket calls are served by the host kernel in that empty namespace")
	case wantsProxy && c.proxyLn != nil:
		got |= score.NetworkAllowlist
		enf.Notes = append(enf.Notes, "egress proxy on 127.0.0.1:3128 inside the container's network namespace")
	case wantsProxy:
		enf.Lost[score.ModNetworkAllowlist] = c.allowlistLost
	}
	if asked.Has(score.Limits) {
		if why := c.limitsMissing(); why != "" {
			enf.Lost[score.ModLimits] = why
		} else {
			got |= score.Limits
		}
	}
	enf.Layers = got
	switch {
	case p.BindsWorkDir():
		enf.Notes = append(enf.Notes, "work_size: not applied (a mount replaces /work)")
	case !c.bundle.WorkMounted:
		enf.Notes = append(enf.Notes, "work_size: not enforced without root and CAP_SYS_ADMIN (/work is a directory of the host's file system)")
	}
	enf.Notes = append(enf.Notes, "runtime "+describe(c.rt),
		"timeout kills every process of the container but its init",
		fmt.Sprintf("payload runs as uid %d with no capabilities and no-new-privileges", ocibundle.UID))
	if c.rt.kind == Runsc {
		enf.Notes = append(enf.Notes, "seccomp applied inside gVisor (--oci-seccomp)",
			"pids limit enforced by gVisor's kernel as RLIMIT_NPROC; memory limit on the whole gVisor sandbox")
	}
	return enf
}

// limitsMissing reads the cgroup limits back and says which one the
// runtime did not apply ("" when all did).
func (c *Container) limitsMissing() string {
	l := c.spec.Policy.Limits
	if c.cg == nil {
		return "no cgroups for this container (rootless)"
	}
	if l.Memory > 0 && c.cg.MemoryLimit() != int64(l.Memory) {
		return fmt.Sprintf("memory limit not applied by %s (read back %d)", c.rt.kind, c.cg.MemoryLimit())
	}
	if l.Pids > 0 && c.rt.kind != Runsc && c.cg.PidsLimit() != l.Pids {
		return fmt.Sprintf("pids limit not applied by %s (read back %d)", c.rt.kind, c.cg.PidsLimit())
	}
	if l.CPUs > 0 && c.cg.CPUQuota() <= 0 {
		return fmt.Sprintf("CPU limit not applied by %s", c.rt.kind)
	}
	return ""
}

// Version returns the runtime's version line, for reports.
func (r *Runtime) Version() string {
	out, err := exec.Command(r.path, "--version").Output()
	if err != nil {
		return ""
	}
	return lastLine(strings.SplitN(string(out), "\n", 2)[0])
}
