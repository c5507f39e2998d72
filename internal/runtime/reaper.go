package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/reexec"
)

// A detached runtime (runsc) leaves its sandbox process behind when `run
// --detach` returns: the process is re-parented to the nearest child
// subreaper, or to the host's PID 1. `runsc delete` then waits until that
// process is gone, zombie included, so a sandbox's teardown takes as long
// as PID 1 takes to reap — about two seconds on hosts whose PID 1 reaps
// lazily. The reaper is a small process, re-executed from kavach's own
// binary, that runs the runtime command as a child subreaper: the sandbox
// process becomes its child, and it reaps it the moment it dies. It exits
// when it has no children left.

// reaperName is the reaper's argv[0].
const reaperName = "kavach-reaper"

// The reaper runs from this package's init, before the program's main: a
// program that never calls kavach.Init() (it runs no process sandboxes)
// must not have its main re-run by a reaper. The init functions of
// packages that do not depend on this one may run before it, as in every
// re-executed kavach child. A process is a reaper only when started the
// way kavach starts one: argv[0] and a command, and a pipe on fd 3 for the
// status; anything else runs the program as usual.
func init() {
	if len(os.Args) > 1 && os.Args[0] == reaperName && isPipe(reaperStatusFD) {
		reaperMain()
	}
}

// isPipe reports whether fd is an open pipe.
func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// reaperStatusFD is the reaper's descriptor on which it reports the exit
// status of the runtime command, as decimal text, before closing it.
const reaperStatusFD = 3

// reaperWait bounds how long Destroy waits for the reaper to exit once the
// container is deleted.
const reaperWait = 5 * time.Second

// reaperMain runs os.Args[1:] as a child subreaper, reports its exit status
// and reaps every orphan until none is left. SIGTERM (kavach's context
// ended) kills the command but not the reaper, which goes on reaping what
// the command left behind until kavach deletes it.
func reaperMain() {
	syscall.CloseOnExec(reaperStatusFD) // the command must not hold the status pipe open
	status := os.NewFile(reaperStatusFD, "status")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "kavach-reaper: subreaper: %v\n", err)
		os.Exit(125)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	_, _ = io.WriteString(status, strconv.Itoa(runChild(term)))
	_ = status.Close()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.ECHILD) {
			os.Exit(0)
		}
	}
}

// runChild runs the reaper's command, killing it on term, and returns its
// exit code (127 when it could not start).
func runChild(term <-chan os.Signal) int {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "kavach-reaper: %v\n", err)
		return 127
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-term:
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	_ = cmd.Wait()
	if cmd.ProcessState == nil {
		return 127
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// reaper is kavach's handle on a reaper process.
type reaper struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the reaper has exited and been waited for
}

// runReaped runs cmd under a new reaper and returns when cmd has exited,
// with cmd's failure as the error. The reaper lives on while the processes
// cmd left behind do. When ctx ends first, cmd is killed; the reaper stays
// to reap what cmd left, so that deleting the container stays fast.
func (r *Runtime) runReaped(ctx context.Context, cmd *exec.Cmd) (*reaper, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	defer pr.Close()
	rc := exec.Command(reexec.Self, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	rc.Args[0] = reaperName
	rc.Env, rc.Stdout, rc.Stderr = cmd.Env, cmd.Stdout, cmd.Stderr
	rc.ExtraFiles = []*os.File{pw} // fd 3
	rc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = r.start(rc)
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	rp := &reaper{cmd: rc, done: make(chan struct{})}
	go func() { _ = rc.Wait(); close(rp.done) }()
	stop := context.AfterFunc(ctx, func() { _ = rc.Process.Signal(syscall.SIGTERM) })
	out, _ := io.ReadAll(pr)
	if !stop() {
		return rp, ctx.Err() // cmd was (or is being) killed, whatever it reported
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	switch {
	case err != nil:
		return rp, errors.New("the reaper exited without reporting a status")
	case code != 0:
		return rp, fmt.Errorf("exit status %d", code)
	}
	return rp, nil
}

// wait waits for the reaper to exit, which it does once every process it
// adopted has been reaped; after timeout it is killed.
func (rp *reaper) wait(timeout time.Duration) {
	if rp == nil {
		return
	}
	select {
	case <-rp.done:
	case <-time.After(timeout):
		_ = rp.cmd.Process.Kill()
		<-rp.done
	}
}
