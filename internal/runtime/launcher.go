package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// controllersFile lists the controllers of a hybrid layout's cgroup2 mount.
// crun 1.8 refuses to run while it is non-empty ("cgroups in hybrid mode not
// supported, drop all controllers from cgroupv2").
const controllersFile = "/sys/fs/cgroup/unified/cgroup.controllers"

// hybridRefusal is how crun says that it refuses the hybrid layout.
const hybridRefusal = "hybrid mode"

// launcher starts processes from one OS thread that lives in a private mount
// namespace, where an empty file hides controllersFile. Processes started
// there inherit that namespace; the host's mounts are untouched. Go forks
// from the calling thread, so the thread is locked for its whole life and
// serves start requests over a channel.
type launcher struct {
	reqs chan launchReq
}

// launchReq is a function to run on the namespace thread.
type launchReq struct {
	fn   func() error
	done chan error
}

// newLauncher sets up the namespace thread. empty is an empty regular file.
func newLauncher(empty string) (*launcher, error) {
	l := &launcher{reqs: make(chan launchReq)}
	ready := make(chan error, 1)
	go l.serve(empty, ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("crun hybrid-cgroup workaround: %w", err)
	}
	return l, nil
}

// serve never unlocks its thread: if setup fails the goroutine returns and
// the runtime discards the thread with its changed namespace.
func (l *launcher) serve(empty string, ready chan<- error) {
	goruntime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		ready <- fmt.Errorf("unshare mount namespace: %w", err)
		return
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		ready <- fmt.Errorf("make mounts private: %w", err)
		return
	}
	if err := unix.Mount(empty, controllersFile, "", unix.MS_BIND, ""); err != nil {
		ready <- fmt.Errorf("hide %s: %w", controllersFile, err)
		return
	}
	ready <- nil
	for r := range l.reqs {
		r.done <- r.fn()
	}
}

// do runs fn on the namespace thread.
func (l *launcher) do(fn func() error) error {
	done := make(chan error, 1)
	l.reqs <- launchReq{fn: fn, done: done}
	return <-done
}

// start starts cmd from the namespace thread.
func (l *launcher) start(cmd *exec.Cmd) error { return l.do(cmd.Start) }

// share makes the file system mounted on dir in the host's namespace
// visible at dir in the namespace too (mounts made after the namespace was
// created do not propagate to it): a clone of that mount is attached there.
// Removing dir on the host later detaches the clone as well.
func (l *launcher) share(dir string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("share %s with the crun launcher: %w", dir, err)
	}
	defer unix.Close(fd)
	return l.do(func() error {
		if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("share %s with the crun launcher: %w", dir, err)
		}
		return nil
	})
}

// hybridControllers reports whether this host has a hybrid layout whose
// cgroup2 mount lists controllers: the case crun refuses.
func hybridControllers() bool {
	data, err := os.ReadFile(controllersFile)
	return err == nil && strings.TrimSpace(string(data)) != ""
}

// emptyFile creates (once) the empty file bound over controllersFile.
func emptyFile(dir string) (string, error) {
	p := dir + "/empty"
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("crun hybrid-cgroup workaround: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil || fi.Size() != 0 {
		return "", errors.Join(errors.New("crun hybrid-cgroup workaround: placeholder file is not empty"), err)
	}
	return p, nil
}
