package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
	"github.com/kavach-sandbox/kavach/internal/cgroup"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
	"github.com/kavach-sandbox/kavach/internal/workfs"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// ErrPauseUnsupported is returned by Pause when the sandbox has no freezer.
var ErrPauseUnsupported = errors.New("process: pause needs the cgroup freezer")

type instance struct {
	spec    backend.Spec
	dir     string // state directory: root mount point and work directory
	workDir string
	cg      *cgroup.Cgroup
	seccomp []byte // compiled filter, handed to every init
	enf     backend.Enforcement
	uid     int
	gid     int
	userns  bool // the init runs in a user namespace of its own

	proxy    *egress.Proxy // allowlist mode only
	proxyLn  net.Listener  // the current init's egress listener
	caBundle string        // host path of the sandbox's trust store, with the proxy CA

	execSlot  chan struct{} // holds a token while an exec runs: one at a time
	mu        sync.Mutex    // guards z and destroyed
	z         *zygote
	destroyed bool
}

var cleanupOnce sync.Once

func newInstance(ctx context.Context, spec *backend.Spec) (_ *instance, err error) {
	cleanupOnce.Do(func() { cleanStale(ctx) })
	in := &instance{spec: *spec, uid: sandboxUID, gid: sandboxGID, execSlot: make(chan struct{}, 1)}
	if os.Geteuid() != 0 {
		in.uid, in.gid = 0, 0 // rootless: the only mapped id is the caller's, seen as 0
	}
	in.userns = os.Geteuid() != 0 || spec.Policy.UserNamespace
	defer func() {
		if err != nil {
			_ = in.Destroy(context.WithoutCancel(ctx))
		}
	}()
	if err := checkIDMaps(&spec.Policy, in.uid); err != nil {
		return nil, err
	}
	if err := in.makeDirs(); err != nil {
		return nil, err
	}
	lost := map[string]string{}
	if err := in.compileSeccomp(lost); err != nil {
		return nil, err
	}
	if err := in.newProxy(); err != nil {
		return nil, err
	}
	in.makeCgroup(ctx, lost)
	in.enf = in.enforcement(lost)
	if _, err := in.ensureZygote(ctx); err != nil {
		return nil, err
	}
	return in, nil
}

// stateBase is where sandboxes keep their state directories.
func stateBase() string {
	if os.Geteuid() == 0 {
		return "/run/kavach/process"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "kavach", "process")
	}
	return filepath.Join(os.TempDir(), "kavach-"+strconv.Itoa(os.Getuid()), "process")
}

// ownerTag names state directories after this process so that a later
// kavach can tell stale ones (dead owner) from live ones.
func ownerTag() string { return strconv.Itoa(os.Getpid()) + "." + procStart(os.Getpid()) }

func (in *instance) makeDirs() error {
	base := stateBase()
	if err := os.MkdirAll(base, 0o711); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	for _, d := range []string{filepath.Dir(base), base} {
		if err := checkOwnDir(d); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	dir, err := os.MkdirTemp(base, ownerTag()+"-"+in.spec.ID+"-")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	in.dir = dir
	in.workDir = filepath.Join(dir, "work")
	for _, d := range []string{filepath.Join(dir, "root"), in.workDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if workfs.Supported() && !in.spec.Policy.BindsWorkDir() {
		return workfs.Mount(in.workDir, in.spec.Policy.EffectiveWorkSize(), in.uid, in.gid, 0o755)
	}
	if err := os.Chown(in.workDir, in.uid, in.gid); err != nil && os.Geteuid() == 0 {
		return fmt.Errorf("work directory: %w", err)
	}
	return nil
}

func (in *instance) compileSeccomp(lost map[string]string) error {
	p := &in.spec.Policy
	if p.Seccomp == policy.SeccompOff {
		return nil
	}
	prog, err := seccomp.Compile(seccomp.Profile(p.Seccomp.String()), p.SeccompAllow)
	if err != nil {
		return fmt.Errorf("seccomp %s: %w", p.Seccomp, err)
	}
	b, err := prog.MarshalBinary()
	if err != nil {
		return fmt.Errorf("seccomp %s: %w", p.Seccomp, err)
	}
	in.seccomp = b
	return nil
}

// makeCgroup creates the sandbox's cgroup. Without one the sandbox still
// runs (rlimits remain), and the resource-limit modifier is marked lost.
func (in *instance) makeCgroup(ctx context.Context, lost map[string]string) {
	l := in.spec.Policy.Limits
	cg, err := cgroup.New(ctx, "kavach/"+in.spec.ID, cgroup.Limits{MemoryBytes: int64(l.Memory), CPUs: l.CPUs, Pids: l.Pids})
	if err != nil {
		lost[score.ModLimits] = "cgroup: " + err.Error()
		return
	}
	in.cg = cg
	a := cg.Applied()
	var missing []string
	if l.Memory > 0 && !a.Memory {
		missing = append(missing, "memory")
	}
	if l.CPUs > 0 && !a.CPU {
		missing = append(missing, "cpu")
	}
	if l.Pids > 0 && !a.Pids {
		missing = append(missing, "pids")
	}
	if len(missing) > 0 {
		lost[score.ModLimits] = fmt.Sprintf("cgroup controllers not available: %v (%s)", missing, cgroup.Detect().Reason)
	}
}

func (in *instance) enforcement(lost map[string]string) backend.Enforcement {
	p := &in.spec.Policy
	l := score.Asked(p) &^ (score.SeccompBasic | score.SeccompAllowlist | score.NetworkAllowlist | score.Limits)
	if in.seccomp != nil {
		l |= score.SeccompLayer(p.Seccomp)
	}
	if in.proxy != nil {
		l |= score.NetworkAllowlist
	}
	if _, gone := lost[score.ModLimits]; !gone && p.HasLimits() {
		l |= score.Limits
	}
	notes := []string{"namespaces: " + namespaceList(p, in.userns)}
	if abi, err := llsys.LandlockGetABIVersion(); err == nil && abi > 0 {
		notes = append(notes, "landlock ABI "+strconv.Itoa(abi))
	} else {
		notes = append(notes, "landlock unavailable: read-only root only")
	}
	if in.cg != nil {
		notes = append(notes, "cgroup "+cgroupVersion())
	}
	switch {
	case p.BindsWorkDir():
		notes = append(notes, "work_size: not applied (a mount replaces /work)")
	case !workfs.Supported():
		notes = append(notes, "work_size: not enforced without root and CAP_SYS_ADMIN (/work is a directory of the host's file system)")
	}
	return backend.Enforcement{Layers: l, Lost: lost, Notes: notes}
}

func namespaceList(p *policy.Policy, userns bool) string {
	s := "pid mount uts ipc cgroup"
	if p.Network.Mode != policy.NetworkOn {
		s += " net"
	}
	if userns {
		s += " user"
	}
	return s
}

func (in *instance) Enforcement() backend.Enforcement { return in.enf }

// Pause freezes every process of the sandbox.
func (in *instance) Pause(ctx context.Context) error {
	if in.cg == nil || !in.cg.Applied().Freezer {
		return ErrPauseUnsupported
	}
	return in.cg.Freeze(ctx)
}

// Resume thaws the sandbox.
func (in *instance) Resume(ctx context.Context) error {
	if in.cg == nil || !in.cg.Applied().Freezer {
		return ErrPauseUnsupported
	}
	return in.cg.Thaw(ctx)
}

// Destroy kills every process, removes the cgroup and the state directory.
func (in *instance) Destroy(ctx context.Context) error {
	in.mu.Lock()
	in.destroyed = true
	z := in.z
	in.z = nil
	in.mu.Unlock()
	var errs []error
	in.thaw() // a frozen init cannot die
	if z != nil {
		z.kill() // PID 1 of the sandbox: every process of its namespace dies with it
	}
	if in.proxy != nil {
		_ = in.proxy.Close()
	}
	if in.dir != "" {
		// Before the cgroup: the work file system's pages are charged to it.
		if err := workfs.RemoveAll(in.dir, in.workDir); err != nil {
			errs = append(errs, fmt.Errorf("remove state: %w", err))
		}
	}
	if in.cg != nil {
		if err := in.cg.Destroy(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cleanStale removes what crashed kavach processes left behind: state
// directories and cgroups whose owner process is gone.
func cleanStale(ctx context.Context) {
	_, _ = cgroup.CleanupStale(ctx)
	entries, err := os.ReadDir(stateBase())
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, start, ok := parseOwner(e.Name())
		if ok && procStart(pid) != start {
			dir := filepath.Join(stateBase(), e.Name())
			_ = workfs.RemoveAll(dir, filepath.Join(dir, "work"))
		}
	}
}

func parseOwner(name string) (pid int, start string, ok bool) {
	var tag string
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			tag = name[:i]
			break
		}
	}
	for i := 0; i < len(tag); i++ {
		if tag[i] == '.' {
			p, err := strconv.Atoi(tag[:i])
			return p, tag[i+1:], err == nil
		}
	}
	return 0, "", false
}

// procStart returns a process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat), or "" when it does not exist.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// the command name (field 2) may contain spaces: skip past its ')'
	i := len(b) - 1
	for i >= 0 && b[i] != ')' {
		i--
	}
	field := 2
	start := -1
	for j := i + 1; j < len(b); j++ {
		if b[j] == ' ' {
			field++
			if field == 22 {
				start = j + 1
			} else if field == 23 {
				return string(b[start:j])
			}
		}
	}
	return ""
}

// ReadFile reads a file through the sandbox's own root (the init's
// /proc/PID/root), so any path the payload sees can be exported, and
// nothing else: resolution stays beneath that root, with the sandbox user's
// file system identity (see backend.ReadFileAs).
func (in *instance) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	in.mu.Lock()
	z := in.z
	in.mu.Unlock()
	if z == nil || !z.alive() {
		return nil, errors.New("process: the sandbox has no running init")
	}
	return backend.ReadFileAs("/proc/"+strconv.Itoa(z.cmd.Process.Pid)+"/root", path, max, in.uid, in.gid)
}

// checkOwnDir refuses a state directory that someone else could tamper
// with: it must be a real directory (not a symlink), owned by kavach's
// effective uid, and writable by nobody else. A shared /tmp is where this
// matters: another user could have created the path first.
func checkOwnDir(d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(d, &st); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", d)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to uid %d", d, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %o)", d, st.Mode&0o777)
	}
	return nil
}
