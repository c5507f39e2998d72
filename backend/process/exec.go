package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/capture"
	"github.com/kavach-sandbox/kavach/internal/cgroup"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/policy"
)

// ErrNoInit means the sandbox init never reported: the program that uses
// kavach did not call kavach.Init() first thing in main.
var ErrNoInit = errors.New("process: sandbox init did not start (call kavach.Init() at the start of main)")

// ErrSetup is wrapped by failures of the sandbox setup inside the init.
var ErrSetup = errors.New("process: sandbox setup failed")

// ErrRequestTooLarge is returned for an exec whose argv and environment do
// not fit in one message to the init.
var ErrRequestTooLarge = errors.New("process: exec request too large")

// errSandboxLost means the init died during an exec (killed, or chosen by
// the OOM killer); the next exec starts a new one.
var errSandboxLost = errors.New("process: sandbox init died")

// killGrace is how long the init has to report after a kill request before
// kavach kills the init itself, and with it the whole sandbox.
const killGrace = 2 * time.Second

// zygote is the parent's handle on a sandbox init.
type zygote struct {
	cmd    *exec.Cmd
	sock   *os.File
	exited chan struct{} // closed when the init has been reaped
	rep    initReport
}

func (z *zygote) fd() int { return int(z.sock.Fd()) }

func (z *zygote) alive() bool {
	select {
	case <-z.exited:
		return false
	default:
		return true
	}
}

// kill ends the init (and so every process of the sandbox) and reaps it.
func (z *zygote) kill() {
	_ = z.cmd.Process.Kill()
	<-z.exited
	z.sock.Close()
}

func (in *instance) initConfig() *initConfig {
	p := &in.spec.Policy
	cfg := &initConfig{
		Cwd: p.Workdir, Hostname: p.Hostname,
		Root: in.dir + "/root", WorkDir: in.workDir, ReadOnlyRoot: p.Filesystem.ReadOnlyRoot,
		TmpSize: p.EffectiveTmpSize(), ResolvConf: p.Network.Mode == policy.NetworkOn, CABundle: in.caBundle,
		UID: in.uid, GID: in.gid, Rootless: os.Geteuid() != 0, Landlock: p.Filesystem.ReadOnlyRoot, Seccomp: in.seccomp,
		Rlimits: rlimits{NoFile: 4096},
	}
	if cfg.Cwd == "" {
		cfg.Cwd = policy.WorkDir
	}
	if in.proxy != nil {
		cfg.ProxyPort = proxyPort
	}
	if cfg.Hostname == "" {
		cfg.Hostname = policy.DefaultHostname
	}
	if p.Limits.CPUTime > 0 && !in.countsCPU() {
		// Without a cgroup's CPU counter, RLIMIT_CPU is the only bound: per
		// process, and on the init too, which it ends (and the next exec
		// replaces) once the init's own CPU time reaches it.
		cfg.Rlimits.CPUSeconds = uint64(math.Ceil(time.Duration(p.Limits.CPUTime).Seconds()))
	}
	for _, m := range p.Filesystem.MountOrder() {
		cfg.Mounts = append(cfg.Mounts, bindMount{Source: m.Source, Dest: m.Dest, RW: m.Mode == policy.ReadWrite, IDMap: -1})
	}
	return cfg
}

func (in *instance) cloneFlags() uintptr {
	f := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if in.spec.Policy.Network.Mode != policy.NetworkOn {
		f |= unix.CLONE_NEWNET
	}
	if in.userns {
		f |= unix.CLONE_NEWUSER
	}
	return f
}

// idMaps returns the user namespace mappings of the init. Rootless: the
// caller's uid and gid are root inside, the only ids there are. As root by
// choice: root and the sandbox user map to themselves, so files look the
// same as without a user namespace, but every capability of the init is
// confined to the sandbox's own namespaces.
func idMaps() (uids, gids []syscall.SysProcIDMap) {
	if os.Geteuid() != 0 {
		return []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
			[]syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: sandboxUID, HostID: sandboxUID, Size: 1}},
		[]syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: sandboxGID, HostID: sandboxGID, Size: 1}}
}

// startZygote starts the sandbox init, places it in the cgroup, sends it
// the configuration and waits until it has built the sandbox.
func (in *instance) startZygote(ctx context.Context) (*zygote, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("process: socketpair: %w", err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "kavach-init"), os.NewFile(uintptr(fds[1]), "kavach-init")
	cmd := &exec.Cmd{Path: reexec.Self, Args: []string{initName}, Env: []string{}, Dir: "/",
		ExtraFiles: []*os.File{child}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: in.cloneFlags(), Setsid: true, Pdeathsig: syscall.SIGKILL}
	if in.userns {
		a := cmd.SysProcAttr
		a.UidMappings, a.GidMappings = idMaps()
		a.GidMappingsEnableSetgroups = os.Geteuid() == 0 // an unprivileged writer must deny setgroups
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if in.cg != nil {
		if fd, ok := in.cg.FD(); ok {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		}
	}
	err = cmd.Start()
	child.Close() // the init's end: once the init dies, reads of ours see end-of-file
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("process: start sandbox init: %w", err)
	}
	z := &zygote{cmd: cmd, sock: parent, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(z.exited) }()
	if err := in.handshake(ctx, z); err != nil {
		z.kill()
		return nil, err
	}
	return z, nil
}

func (in *instance) handshake(ctx context.Context, z *zygote) error {
	cfg := in.initConfig()
	join, err := in.cgroupJoinFiles()
	if err != nil {
		return err
	}
	defer closeAll(join)
	cfg.CgroupFiles = len(join)
	userns, err := idmapFiles(cfg, in.userns)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if err := sendMsg(z.fd(), cfg, append(fileFDs(join), fileFDs(userns)...)...); err != nil {
		return fmt.Errorf("%w: send configuration: %v", ErrNoInit, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = z.cmd.Process.Kill() })
	defer stop()
	files, err := recvMsg(z.fd(), make([]byte, 64<<10), &z.rep)
	defer closeAll(files)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return ErrNoInit
	case z.rep.Stage != "ready":
		return fmt.Errorf("%w at %s: %s", ErrSetup, z.rep.Stage, z.rep.Error)
	case len(in.seccomp) > 0 && !z.rep.Seccomp:
		return fmt.Errorf("%w: seccomp filter not loaded", ErrSetup)
	case in.proxy != nil && len(files) != 1:
		return fmt.Errorf("%w: no egress listener from the init", ErrSetup)
	case in.proxy != nil:
		return in.serveProxy(files[0])
	}
	return nil
}

// cgroupJoinFiles returns the files through which the init moves itself
// into the sandbox's cgroup (v1). Joining from inside avoids the kernel's
// attach wait that writing the init's pid from outside pays (5-10 ms).
// On v2 the init was started inside the cgroup (CLONE_INTO_CGROUP).
func (in *instance) cgroupJoinFiles() ([]*os.File, error) {
	if in.cg == nil {
		return nil, nil
	}
	if _, ok := in.cg.FD(); ok {
		return nil, nil
	}
	files, err := in.cg.SelfJoinFiles()
	if err != nil {
		return nil, fmt.Errorf("process: join cgroup: %w", err)
	}
	return files, nil
}

// ensureZygote returns the running init, starting a new one when the last
// died (the work directory persists; /tmp starts empty again).
func (in *instance) ensureZygote(ctx context.Context) (*zygote, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.destroyed {
		return nil, errors.New("process: sandbox destroyed")
	}
	if in.z != nil && in.z.alive() {
		return in.z, nil
	}
	if in.z != nil {
		in.z.kill()
	}
	z, err := in.startZygote(ctx)
	if err != nil {
		return nil, err
	}
	in.z = z
	return z, nil
}

// stdio is the parent's side of one exec's descriptors.
type stdio struct {
	stops  []func()   // end the input copies
	send   []*os.File // given to the init, closed here once sent
	outR   *os.File
	errR   *os.File
	copies sync.WaitGroup
}

// stopInputs ends the input copies (once).
func (s *stdio) stopInputs() {
	for _, stop := range s.stops {
		stop()
	}
	s.stops = nil
}

func (s *stdio) closeSent() {
	closeAll(s.send)
	s.send = nil
}

// newStdio makes stdin (empty, or fed from r), capped stdout and stderr,
// and one pipe per extra file.
func newStdio(r io.Reader, files map[int][]byte, stdout, stderr *capture.Buffer) (*stdio, []int, error) {
	s := &stdio{}
	fail := func(err error) (*stdio, []int, error) {
		s.stopInputs()
		s.closeSent()
		closeAll([]*os.File{s.outR, s.errR})
		return nil, nil, err
	}
	in, stop, err := inputPipe(r)
	if err != nil {
		return fail(err)
	}
	s.stops = append(s.stops, stop)
	s.send = append(s.send, in)
	for _, dst := range []struct {
		r **os.File
		w *capture.Buffer
	}{{&s.outR, stdout}, {&s.errR, stderr}} {
		pr, pw, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		*dst.r = pr
		s.send = append(s.send, pw)
		s.copies.Add(1)
		go func(w *capture.Buffer) { defer s.copies.Done(); _, _ = io.Copy(w, pr) }(dst.w)
	}
	targets := make([]int, 0, len(files))
	for fd := range files {
		if fd < 3 {
			return fail(fmt.Errorf("process: inherited fd %d: must be 3 or more", fd))
		}
		targets = append(targets, fd)
	}
	sort.Ints(targets)
	for _, fd := range targets {
		f, stop, err := inputPipe(bytesReader(files[fd]))
		if err != nil {
			return fail(err)
		}
		s.stops = append(s.stops, stop)
		s.send = append(s.send, f)
	}
	return s, targets, nil
}

// inputPipe returns a read end fed from r by a goroutine, or /dev/null,
// and a function that stops the copy once the exec is over.
//
// The payload never receives the caller's own descriptor, even when r is a
// file: a socket would let it write back past the gate and the network
// rules, and a directory or regular file would let it reopen the caller's
// file through /proc/self/fd. The copy stops when the exec ends: a reader
// with read deadlines (pipes, sockets, terminals) is interrupted and left
// usable; another reader's single blocked read ends when it returns.
func inputPipe(r io.Reader) (*os.File, func(), error) {
	if r == nil {
		f, err := os.Open(os.DevNull)
		return f, func() {}, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer pw.Close()
		_, _ = io.Copy(pw, r)
	}()
	stop := func() {
		pw.Close() // a copy blocked on a full pipe ends with EPIPE
		if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
			<-done
			_ = d.SetReadDeadline(time.Time{})
		}
	}
	return pr, stop, nil
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b} }

// Exec runs one payload in the sandbox: the init forks it in a new session
// as its child, and kills whatever the payload left behind when it ends.
//
// Execs run one at a time; one that waits for another's end gives up when
// its context ends.
func (in *instance) Exec(ctx context.Context, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	select {
	case in.execSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("exec: waiting for the sandbox's running exec: %w", context.Cause(ctx))
	}
	defer func() { <-in.execSlot }()
	z, err := in.ensureZygote(ctx)
	if err != nil {
		return nil, err
	}
	stdout, stderr := capture.New(req.MaxOutput), capture.New(req.MaxOutput)
	io, targets, err := newStdio(req.Stdin, req.Files, stdout, stderr)
	if err != nil {
		return nil, err
	}
	defer closeAll([]*os.File{io.outR, io.errR})
	defer io.stopInputs()
	cwd := req.Workdir
	if cwd == "" {
		cwd = policy.WorkDir
	}
	before := in.stats()
	start := time.Now()
	msg := execRequest{Argv: req.Argv, Env: backend.MergeEnv(in.spec.Env, in.proxyEnv(), req.Env), Cwd: cwd, Files: targets}
	err = sendMsg(z.fd(), msg, fileFDs(io.send)...)
	io.closeSent()
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, ErrRequestTooLarge) {
		return nil, fmt.Errorf("%w: argv and environment", ErrRequestTooLarge) // the init is fine
	}
	if err != nil {
		z.kill()
		return nil, fmt.Errorf("%w: %v", errSandboxLost, err)
	}
	budget := cpuBudget{limit: time.Duration(in.spec.Policy.Limits.CPUTime), base: before.CPUTime}
	reply, end, err := in.await(ctx, z, req.Timeout, budget)
	timedOut := end == endTimeout
	dur := time.Since(start)
	drain(io)
	if err != nil && !errors.Is(err, errSandboxLost) {
		return nil, err
	}
	out := &backend.ExecOutput{
		Stdout: stdout.Bytes(), Stderr: stderr.Bytes(),
		StdoutTruncated: stdout.Truncated(), StderrTruncated: stderr.Truncated(), Duration: dur,
		CPUTime: time.Duration(reply.UtimeUS+reply.StimeUS) * time.Microsecond, MaxRSSKB: reply.MaxRSSKB,
	}
	after := in.stats()
	oom := after.OOMKills > before.OOMKills
	if err != nil && !oom && !timedOut {
		return nil, err // the init died for another reason
	}
	classify(out, reply, req.Argv[0], cwd, timedOut, oom)
	if end == endCPU && !oom {
		out.Status, out.Signal, out.ExitCode = backend.StatusSignaled, int(syscall.SIGXCPU), 128+int(syscall.SIGXCPU)
	}
	if used := after.CPUTime - before.CPUTime; used > out.CPUTime {
		out.CPUTime = used // includes processes nobody waited for
	}
	return out, nil
}

// execEnd is why an exec ended, as far as kavach is concerned.
type execEnd int

const (
	endOwn     execEnd = iota // the payload ended (or the caller cancelled)
	endTimeout                // the wall-clock timeout
	endCPU                    // the exec's CPU budget (policy cpu_time)
)

// cpuBudget is the CPU time one exec may use, all its processes together:
// the sandbox cgroup's CPU counter above base. RLIMIT_CPU, set too, bounds
// only each process, so a payload that forks would use it many times over.
type cpuBudget struct {
	limit, base time.Duration
}

// cpuPoll is how often an exec's CPU use is read: the budget may be
// overrun by about this much CPU per core.
const cpuPoll = 50 * time.Millisecond

// await waits for the init's reply, asking it to kill the payload on
// timeout, on using up its CPU budget or on cancellation, and killing the
// init itself if it does not obey.
func (in *instance) await(ctx context.Context, z *zygote, timeout time.Duration, cpu cpuBudget) (execReply, execEnd, error) {
	type result struct {
		r   execReply
		err error
	}
	replies := make(chan result, 1)
	go func() {
		var r execReply
		files, err := recvMsg(z.fd(), make([]byte, 64<<10), &r)
		closeAll(files)
		replies <- result{r, err}
	}()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	var poll <-chan time.Time
	if cpu.limit > 0 && in.countsCPU() {
		t := time.NewTicker(cpuPoll)
		defer t.Stop()
		poll = t.C
	}
	var grace <-chan time.Time
	end, cancelled := endOwn, false
	killPayload := func() {
		in.thaw() // a frozen init could not act on the request
		_ = sendMsg(z.fd(), execRequest{Kill: true})
		g := time.NewTimer(killGrace)
		grace = g.C
	}
	done := ctx.Done()
	for {
		select {
		case res := <-replies:
			if res.err != nil {
				z.kill()
				return res.r, end, fmt.Errorf("%w: %v", errSandboxLost, res.err)
			}
			if cancelled {
				return res.r, endOwn, ctx.Err()
			}
			return res.r, end, nil
		case <-deadline:
			end, deadline, poll = endTimeout, nil, nil
			killPayload()
		case <-poll:
			if in.stats().CPUTime-cpu.base >= cpu.limit {
				end, deadline, poll = endCPU, nil, nil
				killPayload()
			}
		case <-done:
			cancelled, done, deadline, poll = true, nil, nil, nil
			killPayload()
		case <-grace:
			in.thaw()
			z.kill() // the init did not obey: the whole sandbox goes
			grace = nil
		}
	}
}

// drain waits for the output copies to reach EOF. Every writer is gone once
// the init has replied, so this is quick; the bound guards against a
// descriptor that escaped (it cannot, but a hung copy must not hang kavach).
func drain(s *stdio) {
	s.stopInputs()
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		closeAll([]*os.File{s.outR, s.errR})
		<-done
	}
}

func fileFDs(files []*os.File) []int {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return fds
}

// classify fills status, exit code and signal.
func classify(out *backend.ExecOutput, r execReply, name, cwd string, timedOut, oom bool) {
	switch {
	case timedOut:
		out.Status, out.Signal, out.ExitCode = backend.StatusTimeout, int(syscall.SIGKILL), 124
	case oom:
		out.Status, out.ExitCode, out.Signal = backend.StatusOOM, 137, int(syscall.SIGKILL)
	case !r.Started:
		// The reply is the init's word, and the init shares the sandbox:
		// the message is built from the caller's argv and the errno only.
		out.Status, out.ExitCode = backend.StatusError, 127
		out.Error = "command not found: " + name
		switch {
		case r.BadWorkdir:
			out.ExitCode, out.Error = 126, "working directory "+cwd+": "+syscall.Errno(r.Errno).Error()
		case r.Errno != int(unix.ENOENT):
			out.ExitCode, out.Error = 126, "command not executable: "+name+": "+syscall.Errno(r.Errno).Error()
		}
	case r.Signal != 0:
		out.Status, out.Signal, out.ExitCode = backend.StatusSignaled, r.Signal, 128+r.Signal
	default:
		out.Status, out.ExitCode = backend.StatusExited, r.ExitCode
	}
}

// thaw unfreezes a paused sandbox so that its processes can be killed.
func (in *instance) thaw() {
	if in.cg != nil && in.cg.Applied().Freezer {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = in.cg.Thaw(ctx)
	}
}

// countsCPU reports whether the sandbox's cgroup counts its CPU time: then
// cpu_time is enforced through that counter for each exec as a whole.
func (in *instance) countsCPU() bool { return in.cg != nil && in.cg.CountsCPU() }

// stats reads the sandbox cgroup's counters (zero without a cgroup).
func (in *instance) stats() cgroup.Stats {
	if in.cg == nil {
		return cgroup.Stats{}
	}
	st, _ := in.cg.Stats()
	return st
}
