package process

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// message is one packet from the parent, as the reader goroutine saw it.
type message struct {
	req   execRequest
	files []*os.File
	err   error
}

// serve is the init's main loop once the sandbox is built: it runs one
// payload at a time, as its child, in a new session, and reports how it
// ended. After each payload, every other process left in the sandbox is
// killed and reaped, so no orphan outlives the exec that started it.
func serve(sock int, buf []byte) {
	msgs := make(chan message)
	go func() {
		for {
			var m message
			m.files, m.err = recvMsg(sock, buf, &m.req)
			msgs <- m
			if m.err != nil {
				return
			}
		}
	}()
	for m := range msgs {
		if m.err != nil {
			os.Exit(0) // the parent is gone: the whole sandbox goes with PID 1
		}
		if m.req.Kill {
			closeAll(m.files)
			continue // nothing is running
		}
		reply := runOne(&m.req, m.files, msgs)
		if err := sendMsg(sock, reply); err != nil {
			os.Exit(0)
		}
	}
}

// runOne starts a payload on this (locked) thread and waits for it while
// honouring kill requests; it returns once the sandbox holds no process
// but the init.
func runOne(req *execRequest, files []*os.File, msgs <-chan message) execReply {
	proc, err := startPayload(req, files)
	closeAll(files)
	if err != nil {
		return startError(err)
	}
	done := make(chan execReply, 1)
	go func() { done <- waitPayload(proc) }()
	for {
		select {
		case r := <-done:
			killLeftovers()
			return r
		case m := <-msgs:
			closeAll(m.files)
			if m.err != nil {
				os.Exit(0)
			}
			if m.req.Kill {
				_ = unix.Kill(-1, unix.SIGKILL) // every process of the namespace but PID 1
			}
		}
	}
}

func startPayload(req *execRequest, files []*os.File) (*os.Process, error) {
	if len(req.Argv) == 0 || len(files) < 3 || len(files) != 3+len(req.Files) {
		return nil, errors.New("malformed exec request")
	}
	if err := checkWorkdir(req.Cwd); err != nil {
		return nil, &workdirError{err}
	}
	path, err := lookPath(req.Argv[0], req.Env)
	if err != nil {
		return nil, err
	}
	fds := files[:3:3]
	for i, target := range req.Files {
		if target < 3 || target > 1023 {
			return nil, errors.New("malformed exec request: fd out of range")
		}
		for len(fds) <= target {
			fds = append(fds, nil)
		}
		fds[target] = files[3+i]
	}
	return os.StartProcess(path, req.Argv, &os.ProcAttr{
		Dir: req.Cwd, Env: req.Env, Files: fds,
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
}

func startError(err error) execReply {
	r := execReply{Error: err.Error(), Errno: int(unix.ENOENT)}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	}
	var wd *workdirError
	r.BadWorkdir = errors.As(err, &wd)
	return r
}

// workdirError is a working directory the payload cannot start in: the
// fork/exec error alone would not tell it from a missing command.
type workdirError struct{ err error }

func (e *workdirError) Error() string { return "working directory: " + e.err.Error() }
func (e *workdirError) Unwrap() error { return e.err }

// checkWorkdir reports why dir (as the sandbox user sees it) cannot be a
// payload's working directory, or nil.
func checkWorkdir(dir string) error {
	if dir == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	return unix.Access(dir, unix.X_OK)
}

func waitPayload(p *os.Process) execReply {
	st, err := p.Wait()
	if err != nil {
		return execReply{Started: true, Error: err.Error()}
	}
	r := execReply{Started: true}
	ws := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		r.Signal = int(ws.Signal())
	} else {
		r.Exited, r.ExitCode = true, ws.ExitStatus()
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.UtimeUS = ru.Utime.Nano() / 1000
		r.StimeUS = ru.Stime.Nano() / 1000
		r.MaxRSSKB = ru.Maxrss
	}
	return r
}

// killLeftovers kills every other process in the pid namespace and reaps
// them all (orphans are reparented to PID 1, this process).
func killLeftovers() {
	_ = unix.Kill(-1, unix.SIGKILL)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // ECHILD: nothing left
		}
	}
}

// lookPath resolves the command with the payload's PATH, inside the sandbox.
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
	return "", &os.PathError{Op: "exec", Path: name, Err: exec.ErrNotFound}
}
