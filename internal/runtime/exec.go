package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/capture"
	"github.com/kavach-sandbox/kavach/policy"
)

const (
	// ioDrain bounds how long output is still collected after the command
	// exited while a background process it left keeps the pipes open.
	ioDrain = 250 * time.Millisecond
	// killGrace is how long a timed-out exec may take to die before the
	// whole container is killed.
	killGrace = 3 * time.Second
)

// Exec runs one command in the container with runtime exec.
func (c *Container) Exec(ctx context.Context, req *backend.ExecRequest) (*backend.ExecOutput, error) {
	if len(req.Argv) == 0 {
		return nil, errors.New("exec: empty command")
	}
	if err := c.brokenErr(); err != nil {
		return nil, err
	}
	in, err := c.execInput(ctx, req)
	if err != nil {
		return nil, err
	}
	defer in.close()
	proc, err := c.processFile(req.Argv, backend.MergeEnv(c.spec.Env, c.proxyEnv(), req.Env), workdir(req, &c.spec.Policy), in.helperOpts)
	if err != nil {
		return nil, err
	}
	defer proc.Close()
	stdout, stderr := capture.New(req.MaxOutput), capture.New(req.MaxOutput)
	oomBefore := c.oomKills()
	start := time.Now()
	c.beginExec()
	cmd, err := c.rt.Exec(c.id, proc, in.stdin, stdout, stderr, in.pipes.child)
	in.pipes.started()
	if err != nil {
		c.endExec(ctx, cpuBudget{}, nil)
		return nil, err
	}
	cmd.WaitDelay = ioDrain
	budget := c.cpuBudget()
	timedOut, overCPU, cancelled := c.wait(ctx, cmd, req.Timeout, budget)
	out := &backend.ExecOutput{
		Stdout: stdout.Bytes(), Stderr: stderr.Bytes(),
		StdoutTruncated: stdout.Truncated(), StderrTruncated: stderr.Truncated(),
		Duration: time.Since(start),
	}
	c.usage(cmd, out)
	c.endExec(ctx, budget, out)
	if cancelled {
		return nil, fmt.Errorf("exec: %w", ctx.Err())
	}
	oom := c.oomKills() > oomBefore
	err = c.classify(ctx, cmd, out, timedOut, oom, req.Argv[0], c.viaHelper(len(in.helperOpts) > 0))
	if err == nil && overCPU && !oom {
		out.Status, out.Signal, out.ExitCode = backend.StatusSignaled, int(syscall.SIGXCPU), 128+int(syscall.SIGXCPU)
	}
	return out, err
}

// cpuBudget is the CPU time one exec may use, all its processes together:
// the container cgroup's CPU counter from now on, up to the policy's
// cpu_time. ok is false without a limit or a counter to read (RLIMIT_CPU,
// per process, still applies).
type cpuBudget struct {
	limit, base time.Duration
	ok          bool
}

func (c *Container) cpuBudget() cpuBudget {
	limit := time.Duration(c.spec.Policy.Limits.CPUTime)
	if limit <= 0 || c.cg == nil {
		return cpuBudget{}
	}
	base, ok := c.cg.CPUUsage()
	return cpuBudget{limit: limit, base: base, ok: ok}
}

func (c *Container) beginExec() {
	c.execMu.Lock()
	c.inflight++
	c.execMu.Unlock()
}

// endExec ends an exec (out is nil for one that did not start). When it is
// the last one running, what the execs left behind is killed: under a CPU
// budget always (endBudget), otherwise in crun and runc (killLeftovers).
// The exec's CPU time is taken from the budget's counter as well.
func (c *Container) endExec(ctx context.Context, b cpuBudget, out *backend.ExecOutput) {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	c.inflight--
	if b.ok && out != nil {
		if used, ok := c.cg.CPUUsage(); ok && used-b.base > out.CPUTime {
			out.CPUTime = used - b.base
		}
	}
	switch {
	case c.inflight > 0:
	case b.ok:
		c.endBudget(ctx)
	default:
		c.killLeftovers(ctx)
	}
}

// killLeftovers kills what the execs left running in a crun or runc
// container, as the process backend does: a process left behind runs as
// the same user as the next exec's and could read its environment (its
// secrets). When only the init is left, as usual, it costs a read of the
// cgroup's process list. gVisor's processes are not visible from the host,
// and finding them costs a runtime exec: there, leftovers are killed only
// under a CPU budget (endBudget).
func (c *Container) killLeftovers(ctx context.Context) {
	if c.rt.kind == Runsc || c.cg == nil {
		return
	}
	pids, err := c.cg.Procs()
	if err != nil || !slices.ContainsFunc(pids, func(p int) bool { return p != c.init }) {
		return
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace)
	defer cancel()
	_ = c.killFromHost(kctx)
}

// endBudget kills what the execs left running under a CPU budget: it
// would spend the next exec's budget, which is read from the container's
// whole cgroup.
func (c *Container) endBudget(ctx context.Context) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace)
	defer cancel()
	if c.rt.kind == Runsc {
		_ = c.killInside(kctx)
	} else {
		_ = c.killFromHost(kctx)
	}
}

// cpuPoll is how often an exec's CPU use is read: the budget may be
// overrun by about this much CPU per core.
const cpuPoll = 50 * time.Millisecond

// execInput is how one exec receives its stdin and secret descriptors.
type execInput struct {
	stdin      io.Reader
	pipes      *secretPipes // crun, runc: passed with --preserve-fds
	helperOpts []string     // runsc: installed by the exec helper
	head       []byte       // runsc: the secrets sent ahead of stdin, wiped by close
}

// close releases the exec's inputs once it has ended.
func (in *execInput) close() {
	in.pipes.close()
	clear(in.head)
}

func (c *Container) execInput(ctx context.Context, req *backend.ExecRequest) (*execInput, error) {
	fds, err := secretTargets(req.Files, c.helper)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	in := &execInput{stdin: req.Stdin, pipes: &secretPipes{}}
	if c.helper {
		in.helperOpts, in.head = helperSecrets(req.Files, fds)
		in.stdin = withHead(in.head, req.Stdin)
		return in, nil
	}
	if in.pipes, err = newSecretPipes(ctx, req.Files, fds); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	return in, nil
}

// workdir is the exec's current directory.
func workdir(req *backend.ExecRequest, p *policy.Policy) string {
	switch {
	case req.Workdir != "":
		return req.Workdir
	case p.Workdir != "":
		return p.Workdir
	}
	return policy.WorkDir
}

// wait waits for the runtime exec process; on timeout, on using up the CPU
// budget or on cancellation it kills every payload process in the
// container and waits again.
func (c *Container) wait(ctx context.Context, cmd *exec.Cmd, timeout time.Duration, cpu cpuBudget) (timedOut, overCPU, cancelled bool) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	var poll <-chan time.Time
	if cpu.ok {
		t := time.NewTicker(cpuPoll)
		defer t.Stop()
		poll = t.C
	}
wait:
	for {
		select {
		case <-done:
			return false, false, false
		case <-expire:
			timedOut = true
			break wait
		case <-poll:
			if used, ok := c.cg.CPUUsage(); ok && used-cpu.base >= cpu.limit {
				overCPU = true
				break wait
			}
		case <-ctx.Done():
			cancelled = true
			break wait
		}
	}
	c.killPayload(context.WithoutCancel(ctx), done, cmd)
	return timedOut, overCPU, cancelled
}

// killPayload kills every process of the container but its init, so the
// whole tree of the timed-out command dies, including processes that left
// its process group or session. If that does not end the exec within
// killGrace, the container itself is killed and marked broken.
func (c *Container) killPayload(ctx context.Context, done <-chan struct{}, cmd *exec.Cmd) {
	kctx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	var err error
	if c.rt.kind == Runsc {
		err = c.killInside(kctx)
	} else {
		err = c.killFromHost(kctx)
	}
	if err == nil {
		select {
		case <-done:
			return
		case <-kctx.Done():
		}
	}
	reason := "timed-out command could not be killed alone"
	if err != nil {
		reason += ": " + err.Error()
	}
	c.markBroken(reason)
	_ = c.rt.KillAll(ctx, c.id)
	_ = cmd.Process.Kill()
	<-done
}

// killFromHost (crun, runc) freezes the container, SIGKILLs every process
// in its cgroup except init and thaws it. Frozen processes cannot fork, so
// nothing escapes between listing and killing. A container the caller
// paused is paused again afterwards (and a Pause or Resume of the caller's
// waits for this to end).
func (c *Container) killFromHost(ctx context.Context) error {
	if c.cg == nil {
		return errors.New("no cgroup to find the processes in")
	}
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	if !c.paused {
		if err := c.rt.Pause(ctx, c.id); err != nil {
			return err
		}
	}
	pids, err := c.cg.Procs()
	for _, pid := range pids {
		if pid != c.init {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Thaw, so that the killed processes die (a frozen one runs no code of
	// its own before its pending SIGKILL), then freeze again what the
	// caller had paused.
	if rerr := c.rt.Resume(ctx, c.id); err == nil {
		err = rerr
	}
	if c.paused {
		if perr := c.rt.Pause(ctx, c.id); err == nil {
			err = perr
		}
	}
	return err
}

// killInside (runsc) runs kill(-1, SIGKILL) in the container as the
// sandbox user: gVisor's kernel delivers it to every process of the
// container but init and the killer, atomically with respect to fork.
func (c *Container) killInside(ctx context.Context) error {
	proc, err := c.processFile([]string{"/bin/sh", "-c", "kill -KILL -1"}, []string{"PATH=/usr/bin:/bin"}, "/", nil)
	if err != nil {
		return err
	}
	defer proc.Close()
	cmd, err := c.rt.Exec(c.id, proc, nil, nil, nil, nil)
	if err != nil {
		return err
	}
	if err := waitCtx(ctx, cmd); err != nil {
		return fmt.Errorf("kill inside the container: %w", err)
	}
	return nil
}

// oomKills is the container's OOM kill counter (0 without a memory cgroup).
func (c *Container) oomKills() int64 {
	if c.cg == nil {
		return 0
	}
	return c.cg.OOMKills()
}

// usage fills CPU time and peak RSS where the runtime process accounts for
// the payload: crun and runc reap it, so their rusage includes it. runsc's
// payload runs inside the gVisor sandbox and is not measured.
func (c *Container) usage(cmd *exec.Cmd, out *backend.ExecOutput) {
	ps := cmd.ProcessState
	if ps == nil || c.rt.kind == Runsc {
		return
	}
	out.CPUTime = ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		out.MaxRSSKB = ru.Maxrss
	}
}

// classify turns the runtime's exit status into kavach's result.
func (c *Container) classify(ctx context.Context, cmd *exec.Cmd, out *backend.ExecOutput, timedOut, oom bool, name string, helped bool) error {
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	switch {
	case oom:
		out.Status, out.ExitCode, out.Signal = backend.StatusOOM, 128+int(syscall.SIGKILL), int(syscall.SIGKILL)
		c.checkAlive(ctx, "the memory limit was hit")
		return nil
	case timedOut:
		out.Status, out.ExitCode, out.Signal = backend.StatusTimeout, 128+int(syscall.SIGKILL), int(syscall.SIGKILL)
		return nil
	case helped && code == 126 && seccompFailure(string(out.Stderr)):
		msg := strings.TrimSpace(string(out.Stderr))
		return fmt.Errorf("%w: %s exec: command not started: %s", ErrCommand, c.rt.kind, strings.TrimPrefix(msg, helperPrefix))
	case (code == c.rt.failureCode() || helped && (code == 126 || code == 127)) && c.startFailure(out, name, code):
		return nil
	case c.execveFailed(out, code, name):
		return nil
	case code == c.rt.failureCode() && isRuntimeError(c.rt.kind, string(out.Stderr)):
		msg := lastLine(string(out.Stderr))
		c.checkAlive(ctx, msg)
		return fmt.Errorf("%w: %s exec: %s", ErrCommand, c.rt.kind, msg)
	case code > 128 && code <= 128+64:
		out.Status, out.ExitCode, out.Signal = backend.StatusSignaled, code, code-128
	case code < 0:
		return fmt.Errorf("%w: %s exec: %v", ErrCommand, c.rt.kind, cmd.ProcessState)
	default:
		out.Status, out.ExitCode = backend.StatusExited, code
		if code == c.rt.failureCode() {
			c.checkAlive(ctx, "exec failed")
		}
	}
	return nil
}

// checkAlive marks the container broken when it no longer runs.
func (c *Container) checkAlive(ctx context.Context, why string) {
	st, err := c.rt.State(context.WithoutCancel(ctx), c.id)
	if err != nil || st.Status != "running" {
		c.markBroken("container stopped: " + why)
	}
}

// failureCode is the exit status a runtime uses when it could not start
// the exec'd process.
func (r *Runtime) failureCode() int {
	if r.kind == Runsc {
		return 128
	}
	return 255
}

// Runtime error messages (the runtime prints them on the exec's stderr,
// where the payload has written nothing since it never started).
var (
	notFoundMsgs = []string{"executable file not found", "not found in $path", "no such file or directory"}
	workdirMsgs  = []string{"chdir", "cwd", "working directory"}
	deniedMsgs   = []string{"permission denied", "operation not permitted", "is a directory", "exec format error"}
	runtimeMsgs  = map[Kind]string{Runc: "exec failed", Runsc: "executing processes for container", Crun: ""}
)

// startFailure recognizes "command not found" (127) and "permission
// denied" (126): the runtime's one-line error is all of stderr.
func (c *Container) startFailure(out *backend.ExecOutput, name string, code int) bool {
	msg := strings.TrimSpace(string(out.Stderr))
	if msg == "" || strings.Contains(msg, "\n") || !isRuntimeError(c.rt.kind, msg) {
		return false
	}
	helper := strings.HasPrefix(msg, helperPrefix)
	if helper && code != 127 && code != 126 {
		return false
	}
	low := strings.ToLower(msg)
	switch {
	case !helper && containsAny(low, workdirMsgs):
		// The working directory, not the command: say which.
		out.Status, out.ExitCode, out.Error = backend.StatusError, 126, "working directory: "+lastLine(msg)
	case helper && code == 127, !helper && containsAny(low, notFoundMsgs):
		out.Status, out.ExitCode, out.Error = backend.StatusError, 127, "command not found: "+name
	case helper, containsAny(low, deniedMsgs):
		out.Status, out.ExitCode, out.Error = backend.StatusError, 126, "permission denied: "+name
	default:
		return false
	}
	out.Stderr = []byte{}
	return true
}

// execveFailed recognises crun's and runc's report that execve of the
// command failed although the file exists — a file with the execute bit but
// no valid format, a script whose interpreter is missing: exit 1 with the
// single line "exec: <error>" (crun) or "exec <path>: <error>" (runc).
// It then makes the result a failure to start: 127 when something was not
// found, else 126.
func (c *Container) execveFailed(out *backend.ExecOutput, code int, name string) bool {
	msg := strings.TrimSpace(string(out.Stderr))
	if code != 1 || c.rt.kind == Runsc || strings.Contains(msg, "\n") ||
		!strings.HasPrefix(msg, "exec: ") && !strings.HasPrefix(msg, "exec "+name+": ") {
		return false
	}
	out.Status, out.ExitCode, out.Error = backend.StatusError, 126, "command not executable: "+name
	if containsAny(strings.ToLower(msg), notFoundMsgs) {
		out.ExitCode, out.Error = 127, "command not found: "+name
	}
	out.Stderr = []byte{}
	return true
}

// seccompFailure reports whether stderr is the exec helper's (or the
// loader's) one line saying the filter could not be loaded.
func seccompFailure(stderr string) bool {
	msg := strings.TrimSpace(stderr)
	return strings.HasPrefix(msg, helperSeccompPrefix) && !strings.Contains(msg, "\n")
}

// isRuntimeError reports whether msg is the runtime's own error line.
func isRuntimeError(k Kind, msg string) bool {
	msg = strings.TrimSpace(msg)
	if msg == "" || strings.Contains(msg, "\n") {
		return false
	}
	if strings.HasPrefix(msg, helperPrefix) {
		return true
	}
	if k == Crun {
		low := strings.ToLower(msg)
		return containsAny(low, notFoundMsgs) || containsAny(low, deniedMsgs) || strings.HasPrefix(msg, "open executable")
	}
	return strings.Contains(msg, runtimeMsgs[k])
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
