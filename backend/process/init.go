package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
)

// initName is argv[0] of the sandbox init, a re-executed copy of the
// current binary that sets up the sandbox from inside its namespaces and
// then execs the payload, which becomes PID 1 of the sandbox.
const initName = "kavach-init"

func init() { reexec.Register(initName, initMain) }

// initMain runs in the child. It never returns: it execs the payload or
// exits after reporting why it could not.
func initMain() {
	runtime.LockOSThread() // credentials, Landlock and seccomp are per thread; exec from this one
	report := os.NewFile(fdReport, "report")
	cfg, err := readConfig()
	if err != nil {
		failInit(report, "config", err)
	}
	rep, err := setupSandbox(cfg)
	if err != nil {
		failInit(report, rep.Stage, err)
	}
	path, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		failInit(report, "exec", err)
	}
	if len(cfg.Seccomp) > 0 {
		prog, err := seccomp.UnmarshalProgram(cfg.Seccomp)
		if err != nil {
			failInit(report, "seccomp", err)
		}
		rep.Seccomp = true
		rep.Stage = "ready"
		writeReport(report, rep)
		if err := prog.Load(); err != nil {
			failInit(report, "seccomp", err)
		}
	} else {
		rep.Stage = "ready"
		writeReport(report, rep)
	}
	err = unix.Exec(path, cfg.Argv, cfg.Env)
	failInit(report, "exec", fmt.Errorf("%s: %w", cfg.Argv[0], err))
}

func readConfig() (*initConfig, error) {
	f := os.NewFile(fdConfig, "config")
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Argv) == 0 {
		return nil, errors.New("empty argv")
	}
	return &cfg, nil
}

func writeReport(w *os.File, r initReport) {
	b, _ := json.Marshal(r)
	_, _ = w.Write(append(b, '\n'))
}

func failInit(w *os.File, stage string, err error) {
	r := initReport{Stage: stage, Error: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	}
	if errors.Is(err, exec.ErrNotFound) {
		r.Errno = int(unix.ENOENT)
	}
	writeReport(w, r)
	os.Exit(127)
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
		{"workdir", func(c *initConfig, _ *initReport) error { return os.Chdir(c.Cwd) }},
		{"rlimits", func(c *initConfig, _ *initReport) error { return setRlimits(c.Rlimits) }},
		{"no_new_privs", func(*initConfig, *initReport) error { return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }},
		{"landlock", applyLandlock},
		{"files", func(c *initConfig, _ *initReport) error { return installFiles(c.Files) }},
		{"credentials", func(c *initConfig, _ *initReport) error { return dropPrivileges(c.UID, c.GID) }},
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
	set := func(res int, v uint64) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("rlimit %d: %w", res, err)
		}
		return nil
	}
	if err := set(unix.RLIMIT_CORE, 0); err != nil {
		return err
	}
	for _, l := range []struct {
		res int
		v   uint64
	}{{unix.RLIMIT_CPU, r.CPUSeconds}, {unix.RLIMIT_FSIZE, r.FileSize}, {unix.RLIMIT_NOFILE, r.NoFile}} {
		if l.v == 0 {
			continue
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.res, &cur); err == nil && cur.Max < l.v {
			l.v = cur.Max // hard limits can be lowered, never raised
		}
		if err := set(l.res, l.v); err != nil {
			return err
		}
	}
	return nil
}

// installFiles moves inherited descriptors to the numbers the payload
// expects. Sources are all >= fdFirst and above every target by
// construction of the parent, so no target overwrites a pending source.
func installFiles(files map[int]int) error {
	for target, src := range files {
		if err := unix.Dup3(src, target, 0); err != nil {
			return fmt.Errorf("fd %d: %w", target, err)
		}
		if src != target {
			_ = unix.Close(src)
		}
	}
	return nil
}

// dropPrivileges clears the capability bounding and ambient sets, switches
// to the unprivileged uid/gid with no supplementary groups, and clears the
// remaining capability sets. It acts on the calling (locked) thread, whose
// credentials the payload inherits at execve.
func dropPrivileges(uid, gid int) error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
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

// lookPath resolves the command with the sandbox's PATH, inside the new root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}
