package ocibundle

import (
	"math"
	"os"
	"path"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/policy"
)

// Defaults of the container's resources.
const (
	// nofileLimit is RLIMIT_NOFILE (lowered to the caller's hard limit).
	nofileLimit = 4096
	// cpuPeriod is the CFS period of the CPU quota, in microseconds.
	cpuPeriod = 100000
)

// maskedPaths hide kernel interfaces that leak host information or allow
// attacks; readonlyPaths are kernel knobs the payload may read, never write.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/firmware",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

func buildSpec(c *Config, b *Bundle, view []specs.Mount) *specs.Spec {
	p := c.Policy
	s := &specs.Spec{
		Version:  OCIVersion,
		Root:     &specs.Root{Path: b.RootFS, Readonly: true},
		Hostname: hostname(p),
		Process:  buildProcess(c),
		Mounts:   append(append(append(baseMounts(p), view...), workMounts(b, p)...), c.Extra...),
		Linux: &specs.Linux{
			Namespaces:    namespaces(c),
			Resources:     resources(c),
			CgroupsPath:   c.CgroupsPath,
			Seccomp:       c.Seccomp,
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	if c.Rootless {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Geteuid()), Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}}
	}
	return s
}

// buildProcess is the init process; exec'd processes copy it.
func buildProcess(c *Config) *specs.Process {
	user := specs.User{UID: UID, GID: GID}
	if c.Rootless {
		user = specs.User{}
	}
	empty := []string{}
	return &specs.Process{
		Args:            c.Args,
		Env:             c.Env,
		Cwd:             "/",
		User:            user,
		NoNewPrivileges: true,
		Capabilities: &specs.LinuxCapabilities{
			Bounding: empty, Effective: empty, Inheritable: empty, Permitted: empty, Ambient: empty,
		},
		Rlimits: rlimits(c),
	}
}

// rlimits: no core dumps, a bounded descriptor table, and (for gVisor) the
// pids limit. Hard limits are only ever lowered.
func rlimits(c *Config) []specs.POSIXRlimit {
	out := []specs.POSIXRlimit{
		{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
		{Type: "RLIMIT_NOFILE", Hard: lowered(unix.RLIMIT_NOFILE, nofileLimit), Soft: lowered(unix.RLIMIT_NOFILE, nofileLimit)},
	}
	if ct := time.Duration(c.Policy.Limits.CPUTime); ct > 0 {
		// The hard limit a second later: at the soft one a process gets
		// SIGXCPU (and dies of it, unless it handles it), which says why.
		n := lowered(unix.RLIMIT_CPU, uint64(math.Ceil(ct.Seconds())))
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_CPU", Hard: lowered(unix.RLIMIT_CPU, n+1), Soft: n})
	}
	if pids := c.Policy.Limits.Pids; c.PidsAsRlimit && pids > 0 {
		n := lowered(unix.RLIMIT_NPROC, uint64(pids))
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: n, Soft: n})
	}
	return out
}

// lowered returns want, or the caller's hard limit when that is lower (the
// runtime cannot raise it).
func lowered(resource int, want uint64) uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(resource, &r); err == nil && r.Max < want {
		return r.Max
	}
	return want
}

// baseMounts are /proc, a minimal /dev and /tmp.
func baseMounts(p *policy.Policy) []specs.Mount {
	tmp := p.EffectiveTmpSize()
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(tmp, 10)}},
	}
}

// workMounts binds the private work directory at /work (unless the policy
// binds a host directory there) and then the policy's mounts.
func workMounts(b *Bundle, p *policy.Policy) []specs.Mount {
	var out []specs.Mount
	if !p.BindsWorkDir() {
		out = append(out, specs.Mount{Destination: policy.WorkDir, Type: "bind", Source: b.WorkDir,
			Options: []string{"rbind", "rw", "nosuid", "nodev"}})
	}
	for _, m := range p.Filesystem.MountOrder() {
		opts := []string{"rbind", "nosuid", "nodev", string(m.Mode)}
		out = append(out, specs.Mount{Destination: path.Clean(m.Dest), Type: "bind", Source: m.Source, Options: opts})
	}
	return out
}

// namespaces: everything private; the network namespace only when the
// policy does not give the host's network; a user namespace when rootless.
func namespaces(c *Config) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
		{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.CgroupNamespace}}
	if c.Policy.Network.Mode != policy.NetworkOn {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if c.Rootless {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	}
	return ns
}

// resources maps the policy's limits to cgroup settings: memory with swap
// equal to memory (no swap), the pids limit (unless enforced as an rlimit)
// and a CFS quota for fractional CPUs. Devices are denied but for the
// runtime's defaults.
func resources(c *Config) *specs.LinuxResources {
	l := c.Policy.Limits
	r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	if l.Memory > 0 {
		m := int64(l.Memory)
		swap := m
		r.Memory = &specs.LinuxMemory{Limit: &m, Swap: &swap}
	}
	if l.Pids > 0 && !c.PidsAsRlimit {
		pids := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &pids}
	}
	if l.CPUs > 0 {
		quota := int64(math.Ceil(l.CPUs * cpuPeriod))
		period := uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	return r
}
