package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Kill sends SIGKILL to every process in the cgroup and waits until none is
// left. On v2 it uses cgroup.kill when the kernel has it (Linux 5.14+).
// Otherwise it freezes the cgroup so nothing can fork, kills every listed
// process, thaws so the signals are acted on, and repeats until empty.
func (c *Cgroup) Kill(ctx context.Context) error {
	if err := c.kill(ctx); err != nil {
		return fmt.Errorf("kill %s: %w", c.name, err)
	}
	return nil
}

func (c *Cgroup) kill(ctx context.Context) error {
	wait := 50 * time.Microsecond
	for {
		pids, err := c.procs()
		if err != nil || len(pids) == 0 {
			return err
		}
		if slices.ContainsFunc(pids, isSelf) {
			return errors.New("kavach's own process is in the cgroup: refusing to freeze or kill it")
		}
		if err := c.killOnce(ctx); err != nil {
			return err
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
}

// killOnce signals every member once: through cgroup.kill where the kernel
// has it, otherwise one by one.
func (c *Cgroup) killOnce(ctx context.Context) error {
	if c.lay.onlyV2() && !c.noKill.Load() {
		err := writeFile(c.dirs[0], "cgroup.kill", "1")
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		c.noKill.Store(true)
	}
	return c.killListed(ctx)
}

// killListed kills every process in the cgroup, frozen if a freezer exists.
func (c *Cgroup) killListed(ctx context.Context) (err error) {
	frozen := c.resDir[resFreezer] != ""
	if frozen {
		// Thaw with a fresh context: a cancelled caller must not leave the
		// sandbox frozen, nor frozen with SIGKILLs pending.
		defer func() {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			err = errors.Join(err, c.setFrozen(tctx, false))
		}()
		if err := c.setFrozen(ctx, true); err != nil {
			return err
		}
	}
	pids, err := c.procs()
	for _, pid := range pids {
		if isSelf(pid) {
			// Never signal kavach itself, whatever was put in the cgroup.
			err = errors.Join(err, fmt.Errorf("kavach's own thread %d is in the cgroup", pid))
			continue
		}
		if e := unix.Kill(pid, unix.SIGKILL); e != nil && e != unix.ESRCH {
			err = errors.Join(err, fmt.Errorf("kill pid %d: %w", pid, e))
		}
	}
	return err
}

// procs returns the members of the cgroup across its hierarchies: thread
// ids from v1 "tasks" (a thread may join a v1 cgroup without its process,
// see JoinSelf) and process ids from v2 "cgroup.procs". kill(2) of a thread
// id signals its whole process.
func (c *Cgroup) procs() ([]int, error) {
	seen := map[int]bool{}
	var all []int
	for i, d := range c.dirs {
		file := "tasks"
		if c.lay.hiers[i].v2 {
			file = "cgroup.procs"
		}
		ids, err := readPids(d, file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	return all, nil
}

// isSelf reports whether id is this process or one of its threads.
func isSelf(id int) bool {
	if id == os.Getpid() {
		return true
	}
	var st unix.Stat_t
	return unix.Stat("/proc/self/task/"+strconv.Itoa(id), &st) == nil
}

// Destroy kills every process in the cgroup and removes its directory from
// every hierarchy. It is idempotent.
func (c *Cgroup) Destroy(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Load() {
		return nil
	}
	if err := c.kill(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("destroy %s: %w", c.name, err)
	}
	if c.fd >= 0 && c.fdClosed.CompareAndSwap(false, true) {
		unix.Close(c.fd)
	}
	if err := c.rmdirs(ctx); err != nil {
		return fmt.Errorf("destroy %s: %w", c.name, err)
	}
	c.gone.Store(true)
	return nil
}

// rmdirs removes the leaf directories. The kernel answers EBUSY while a
// killed process has not yet left the cgroup (zombies do not count); that
// lasts microseconds, so EBUSY is retried for up to two seconds.
func (c *Cgroup) rmdirs(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var errs []error
	for _, d := range c.dirs {
		err := poll(ctx, "rmdir "+d, func() (bool, error) {
			err := unix.Rmdir(d)
			switch err {
			case nil, unix.ENOENT:
				return true, nil
			case unix.EBUSY:
				return false, nil
			}
			return false, &os.PathError{Op: "rmdir", Path: d, Err: err}
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
