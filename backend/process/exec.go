package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/capture"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/policy"
)

// ErrNoInit means the sandbox init never reported: the program that uses
// kavach did not call kavach.Init() first thing in main.
var ErrNoInit = errors.New("process: sandbox init did not start (call kavach.Init() at the start of main)")

// ErrSetup is wrapped by failures of the sandbox setup inside the init.
var ErrSetup = errors.New("process: sandbox setup failed")

// Exec starts a sandbox init that builds the sandbox and execs the payload
// as PID 1 of the sandbox's pid namespace, then waits for it.
func (in *instance) Exec(ctx context.Context, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	cfg := in.initConfig(req)
	files, cleanup, err := payloadFiles(ctx, req.Files, cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	stdout, stderr := capture.New(req.MaxOutput), capture.New(req.MaxOutput)
	cmd, repR, err := in.start(cfg, req, stdout, stderr, files)
	if err != nil {
		return nil, err
	}
	return in.wait(ctx, cmd, repR, req, stdout, stderr)
}

func (in *instance) initConfig(req *backend.ExecRequest) *initConfig {
	p := &in.spec.Policy
	cfg := &initConfig{
		Argv: req.Argv, Env: mergeEnv(in.spec.Env, req.Env), Cwd: req.Workdir, Hostname: p.Hostname,
		Root: in.dir + "/root", WorkDir: in.workDir, ReadOnlyRoot: p.Filesystem.ReadOnlyRoot,
		TmpSize: int64(p.Filesystem.TmpSize), ResolvConf: p.Network.Mode == policy.NetworkOn,
		UID: in.uid, GID: in.gid, Landlock: p.Filesystem.ReadOnlyRoot, Seccomp: in.seccomp,
		Rlimits: rlimits{NoFile: 4096},
	}
	if cfg.Cwd == "" {
		cfg.Cwd = policy.WorkDir
	}
	if cfg.Hostname == "" {
		cfg.Hostname = policy.DefaultHostname
	}
	if cfg.TmpSize == 0 {
		cfg.TmpSize = defaultTmpSize
	}
	if p.Limits.CPUTime > 0 {
		cfg.Rlimits.CPUSeconds = uint64(math.Ceil(time.Duration(p.Limits.CPUTime).Seconds()))
	}
	for _, m := range p.Filesystem.Mounts {
		cfg.Mounts = append(cfg.Mounts, bindMount{Source: m.Source, Dest: m.Dest, RW: m.Mode == policy.ReadWrite})
	}
	return cfg
}

// mergeEnv overlays extra "K=V" entries on base.
func mergeEnv(base, extra []string) []string {
	if len(extra) == 0 {
		return base
	}
	idx := map[string]int{}
	out := append([]string(nil), base...)
	for i, kv := range out {
		idx[envKey(kv)] = i
	}
	for _, kv := range extra {
		if i, ok := idx[envKey(kv)]; ok {
			out[i] = kv
		} else {
			idx[envKey(kv)] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func envKey(kv string) string {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i]
		}
	}
	return kv
}

// payloadFiles makes one pipe per requested fd, filled with its content by
// a goroutine, and records the fd mapping in cfg.
func payloadFiles(ctx context.Context, files map[int][]byte, cfg *initConfig) ([]*os.File, func(), error) {
	if len(files) == 0 {
		return nil, func() {}, nil
	}
	targets := make([]int, 0, len(files))
	for fd := range files {
		if fd < 3 {
			return nil, nil, fmt.Errorf("process: inherited fd %d: must be 3 or more", fd)
		}
		targets = append(targets, fd)
	}
	sort.Ints(targets)
	var out []*os.File
	cleanup := func() {
		for _, f := range out {
			f.Close()
		}
	}
	cfg.Files = map[int]int{}
	base := max(fdFirst, targets[len(targets)-1]+1) // sources above every target
	for i, fd := range targets {
		r, w, err := os.Pipe()
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		go func(data []byte) {
			defer w.Close()
			_, _ = w.Write(data)
		}(files[fd])
		out = append(out, r)
		cfg.Files[fd] = base + i
	}
	return padFiles(out, base), cleanup, nil
}

// padFiles places files so that ExtraFiles index i becomes fd 3+i: the
// report and config pipes take 3 and 4, the payload pipes start at base.
func padFiles(files []*os.File, base int) []*os.File {
	padded := make([]*os.File, base-fdFirst, base-fdFirst+len(files))
	return append(padded, files...)
}

func (in *instance) cloneFlags() uintptr {
	f := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if in.spec.Policy.Network.Mode != policy.NetworkOn {
		f |= unix.CLONE_NEWNET
	}
	if os.Geteuid() != 0 {
		f |= unix.CLONE_NEWUSER
	}
	return f
}

func (in *instance) start(cfg *initConfig, req *backend.ExecRequest, stdout, stderr *capture.Buffer, files []*os.File) (*exec.Cmd, *os.File, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer cfgR.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		cfgW.Close()
		return nil, nil, err
	}
	defer repW.Close()
	cmd := &exec.Cmd{Path: reexec.Self, Args: []string{initName}, Env: []string{}, Dir: "/",
		Stdin: req.Stdin, Stdout: stdout, Stderr: stderr,
		ExtraFiles: append([]*os.File{cfgR, repW}, files...), WaitDelay: time.Second}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: in.cloneFlags(), Setsid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if in.cg != nil {
		if fd, ok := in.cg.FD(); ok {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		}
	}
	in.mu.Lock()
	if in.destroyed {
		in.mu.Unlock()
		cfgW.Close()
		repR.Close()
		return nil, nil, fmt.Errorf("process: sandbox destroyed")
	}
	err = cmd.Start()
	if err == nil {
		in.running[cmd.Process] = struct{}{}
	}
	in.mu.Unlock()
	if err != nil {
		cfgW.Close()
		repR.Close()
		return nil, nil, fmt.Errorf("process: start sandbox init: %w", err)
	}
	if err := in.sendConfig(cmd, cfgW, cfg); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		in.forget(cmd.Process)
		repR.Close()
		return nil, nil, err
	}
	return cmd, repR, nil
}

// sendConfig joins the init to the cgroup (v1: before it runs anything) and
// then releases it by sending its configuration.
func (in *instance) sendConfig(cmd *exec.Cmd, w *os.File, cfg *initConfig) error {
	defer w.Close()
	if in.cg != nil {
		if _, ok := in.cg.FD(); !ok {
			if err := in.cg.AddProc(cmd.Process.Pid); err != nil {
				return fmt.Errorf("process: join cgroup: %w", err)
			}
		}
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("process: send config to init: %w", err)
	}
	return nil
}

func (in *instance) forget(p *os.Process) {
	in.mu.Lock()
	delete(in.running, p)
	in.mu.Unlock()
}

// wait waits for the payload, killing its whole pid namespace on timeout or
// cancellation, and builds the output.
func (in *instance) wait(ctx context.Context, cmd *exec.Cmd, repR *os.File, req *backend.ExecRequest, stdout, stderr *capture.Buffer) (*backend.ExecOutput, error) {
	start := time.Now()
	defer in.forget(cmd.Process)
	oomBefore := in.oomKills()
	cpuBefore := in.cgroupCPU()
	reports := make(chan initReport, 1)
	go func() { reports <- readReports(repR) }()
	var timedOut, cancelled atomic.Bool
	stop := context.AfterFunc(ctx, func() { cancelled.Store(true); _ = cmd.Process.Kill() })
	defer stop()
	if req.Timeout > 0 {
		t := time.AfterFunc(req.Timeout, func() { timedOut.Store(true); _ = cmd.Process.Kill() })
		defer t.Stop()
	}
	waitErr := cmd.Wait()
	rep := <-reports
	dur := time.Since(start)
	if cancelled.Load() && !timedOut.Load() {
		return nil, ctx.Err()
	}
	out := &backend.ExecOutput{
		Stdout: stdout.Bytes(), Stderr: stderr.Bytes(),
		StdoutTruncated: stdout.Truncated(), StderrTruncated: stderr.Truncated(), Duration: dur,
	}
	if err := in.classify(out, cmd, waitErr, rep, req.Argv[0]); err != nil {
		return nil, err
	}
	switch {
	case timedOut.Load():
		out.Status = backend.StatusTimeout
	case in.oomKills() > oomBefore:
		out.Status, out.ExitCode, out.Signal = backend.StatusOOM, 137, int(syscall.SIGKILL)
	}
	in.usage(out, cmd, cpuBefore)
	return out, nil
}

// classify fills status, exit code and signal from the init's reports and
// the wait status.
func (in *instance) classify(out *backend.ExecOutput, cmd *exec.Cmd, waitErr error, rep initReport, name string) error {
	ps := cmd.ProcessState
	if ps == nil {
		return fmt.Errorf("process: wait: %w", waitErr)
	}
	switch rep.Stage {
	case "ready":
	case "exec":
		out.Status, out.ExitCode = backend.StatusError, 127
		out.Error = "command not found: " + name
		if rep.Errno == int(unix.EACCES) || rep.Errno == int(unix.ENOEXEC) || rep.Errno == int(unix.EISDIR) || rep.Errno == int(unix.EPERM) {
			out.ExitCode, out.Error = 126, "command not executable: "+name+": "+rep.Error
		}
		return nil
	case "":
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			break // killed (timeout, OOM, destroy) before it reported
		}
		return ErrNoInit
	default:
		return fmt.Errorf("%w at %s: %s", ErrSetup, rep.Stage, rep.Error)
	}
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		out.Status, out.Signal, out.ExitCode = backend.StatusSignaled, int(ws.Signal()), 128+int(ws.Signal())
	} else {
		out.Status, out.ExitCode = backend.StatusExited, ws.ExitStatus()
	}
	return nil
}

func (in *instance) usage(out *backend.ExecOutput, cmd *exec.Cmd, cpuBefore time.Duration) {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		out.MaxRSSKB = ru.Maxrss
		out.CPUTime = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if after := in.cgroupCPU(); after > cpuBefore {
		out.CPUTime = max(out.CPUTime, after-cpuBefore) // includes processes nobody waited for
	}
}

func (in *instance) oomKills() int64 {
	if in.cg == nil {
		return 0
	}
	st, err := in.cg.Stats()
	if err != nil {
		return 0
	}
	return st.OOMKills
}

func (in *instance) cgroupCPU() time.Duration {
	if in.cg == nil {
		return 0
	}
	st, err := in.cg.Stats()
	if err != nil {
		return 0
	}
	return st.CPUTime
}

// readReports returns the init's last report; EOF without one means the
// init died or never ran kavach's init code.
func readReports(r *os.File) initReport {
	defer r.Close()
	var last initReport
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rep initReport
		if json.Unmarshal(sc.Bytes(), &rep) == nil {
			last = rep
		}
	}
	return last
}
