package process

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/cgroup"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
)

// initName is argv[0] of the sandbox init: a re-executed copy of the
// current binary that builds the sandbox from inside its namespaces, then
// stays as PID 1 and runs each exec's payload (see zygote.go).
const initName = "kavach-init"

func init() { reexec.Register(initName, initMain) }

// initMain runs in the child and never returns.
func initMain() {
	// Per-thread state (capability bounding set) must be that of the
	// thread that forks payloads: the main goroutine, locked to it.
	runtime.LockOSThread()
	// Nothing kavach's caller left open may reach a payload, and neither
	// may the control socket: every descriptor from 3 up is close-on-exec.
	if err := unix.CloseRange(fdSocket, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		os.Exit(125)
	}
	ignoreSignals()
	buf := make([]byte, maxMessage)
	var cfg initConfig
	files, err := recvMsg(fdSocket, buf, &cfg)
	if err != nil || cfg.CgroupFiles > len(files) {
		os.Exit(125)
	}
	rep, err := initialize(&cfg, files)
	closeAll(files)
	if err == nil && len(cfg.Seccomp) > 0 {
		err = loadSeccomp(cfg.Seccomp, &rep)
	}
	if err != nil {
		rep.Error = err.Error()
		_ = sendMsg(fdSocket, rep)
		os.Exit(125)
	}
	rep.Stage = "ready"
	var send []int
	if cfg.ProxyPort != 0 {
		send = append(send, cfg.proxyFD)
	}
	if err := sendMsg(fdSocket, rep, send...); err != nil {
		os.Exit(125)
	}
	if cfg.ProxyPort != 0 {
		_ = unix.Close(cfg.proxyFD)
	}
	serve(fdSocket, buf)
}

// initialize joins the cgroup (this thread, before it forks anything) and
// builds the sandbox.
func initialize(cfg *initConfig, files []*os.File) (initReport, error) {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := cgroup.JoinSelf(fds[:cfg.CgroupFiles]); err != nil {
		return initReport{Stage: "cgroup"}, fmt.Errorf("cgroup: %w", err)
	}
	cfg.usernsFDs = fds[cfg.CgroupFiles:]
	return setupSandbox(cfg)
}

// ignoreSignals keeps the init alive whatever a payload sends it. PID 1 of
// a pid namespace only receives the signals it handles, and the Go runtime
// handles most: relaying them to a channel that nobody acts on makes each a
// no-op (SIGKILL and SIGSTOP from inside the namespace are ignored by the
// kernel). They stay handled, not SIG_IGN, because ignored dispositions
// would be inherited by the payloads through fork and execve. SIGCHLD and
// SIGURG keep the runtime's own handling.
func ignoreSignals() {
	var sigs []os.Signal
	for s := syscall.Signal(1); s <= 31; s++ {
		switch s {
		case syscall.SIGCHLD, syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGURG:
			continue
		}
		sigs = append(sigs, s)
	}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, sigs...)
	go func() {
		for range ch {
		}
	}()
}

func loadSeccomp(b []byte, rep *initReport) error {
	rep.Stage = "seccomp"
	prog, err := seccomp.UnmarshalProgram(b)
	if err != nil {
		return err
	}
	if err := prog.Load(); err != nil {
		return err
	}
	rep.Seccomp = true
	return nil
}

// setupSandbox applies every layer but seccomp, in order. The returned
// report names the stage that failed.
func setupSandbox(cfg *initConfig) (initReport, error) {
	rep := initReport{}
	steps := []struct {
		name string
		fn   func(*initConfig, *initReport) error
	}{
		{"cgroupns", func(*initConfig, *initReport) error { return unix.Unshare(unix.CLONE_NEWCGROUP) }},
		{"mounts", func(c *initConfig, _ *initReport) error { return buildRoot(c) }},
		{"hostname", func(c *initConfig, _ *initReport) error { return unix.Sethostname([]byte(c.Hostname)) }},
		{"loopback", func(*initConfig, *initReport) error { return loopbackUp() }},
		{"egress", func(c *initConfig, _ *initReport) error {
			if c.ProxyPort == 0 {
				return nil
			}
			fd, err := listenProxy(c.ProxyPort)
			c.proxyFD = fd
			return err
		}},
		{"workdir", func(c *initConfig, _ *initReport) error { return os.Chdir(c.Cwd) }},
		{"rlimits", func(c *initConfig, _ *initReport) error { return setRlimits(c.Rlimits) }},
		{"no_new_privs", func(*initConfig, *initReport) error { return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }},
		{"landlock", applyLandlock},
		{"credentials", func(c *initConfig, _ *initReport) error { return dropPrivileges(c.UID, c.GID, c.Rootless) }},
		{"dumpable", func(*initConfig, *initReport) error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }},
	}
	for _, s := range steps {
		if err := s.fn(cfg, &rep); err != nil {
			rep.Stage = s.name
			return rep, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return rep, nil
}

// loopbackUp brings up "lo" so that the sandbox can use 127.0.0.1 in its
// own network namespace. It is a no-op when lo is already up (shared net).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func setRlimits(r rlimits) error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("rlimit %d: %w", unix.RLIMIT_CORE, err)
	}
	for _, l := range []struct {
		res   int
		v     uint64
		grace uint64 // hard limit above the soft one
	}{
		// At the soft CPU limit a process gets SIGXCPU and dies of it
		// (unless it handles it), which says why; the hard one follows.
		{unix.RLIMIT_CPU, r.CPUSeconds, 1},
		{unix.RLIMIT_FSIZE, r.FileSize, 0},
		{unix.RLIMIT_NOFILE, r.NoFile, 0},
	} {
		if l.v == 0 {
			continue
		}
		lim := unix.Rlimit{Cur: l.v, Max: l.v + l.grace}
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.res, &cur); err == nil {
			lim.Max = min(lim.Max, cur.Max) // hard limits can be lowered, never raised
			lim.Cur = min(lim.Cur, lim.Max)
		}
		if err := unix.Setrlimit(l.res, &lim); err != nil {
			return fmt.Errorf("rlimit %d: %w", l.res, err)
		}
	}
	return nil
}

// dropPrivileges clears the capability bounding and ambient sets of the
// forking thread, then switches every thread to the unprivileged uid/gid
// with no supplementary groups (which clears the permitted and effective
// sets), and clears what remains of this thread's capability sets.
func dropPrivileges(uid, gid int, rootless bool) error {
	// Root inside (rootless mode) must not regain capabilities at execve.
	const (
		secbitNoRoot         = 1 << 0
		secbitNoRootLocked   = 1 << 1
		secbitKeepCapsLocked = 1 << 5
		secure               = secbitNoRoot | secbitNoRootLocked | secbitKeepCapsLocked
	)
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, secure, 0, 0, 0); err != nil {
		return fmt.Errorf("securebits: %w", err)
	}
	last := lastCap()
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The syscall package applies these to every thread of the process.
	// A user namespace made without privilege cannot call setgroups (the
	// kernel denies it there); the caller's own groups, unmapped inside,
	// remain and grant nothing in the sandbox's view.
	if !rootless {
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &n); err != nil {
		return 63
	}
	return n
}
