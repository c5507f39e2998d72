// Package cgroup confines kavach sandboxes in cgroups: memory (with swap
// off), pids and CPU limits, freezing for pause/resume, OOM-kill detection,
// CPU time and peak memory accounting, killing every process of a sandbox,
// and removal on destroy. It drives cgroup v2 and v1 (including hybrid
// layouts) by writing the control files directly.
//
// Every kavach cgroup lives under a "kavach" directory at the root of each
// hierarchy in use. The directory of a sandbox is named
// "<owner pid>.<owner start time>-<id>" so that CleanupStale can tell the
// cgroups of a crashed kavach from those of a live one.
package cgroup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrUnsupported reports that the host cannot provide what was asked:
	// no usable cgroup hierarchy, or not the controller an operation needs.
	ErrUnsupported = errors.New("cgroup: not supported on this host")
	// ErrInvalidName reports a cgroup name that is not "kavach/<id>" with
	// id made of [A-Za-z0-9._-].
	ErrInvalidName = errors.New("cgroup: invalid name")
	// ErrInvalidLimits reports negative or otherwise impossible limits.
	ErrInvalidLimits = errors.New("cgroup: invalid limits")
	// ErrDestroyed reports use of a cgroup after Destroy.
	ErrDestroyed = errors.New("cgroup: destroyed")
)

// parentDir is the directory, at the root of each hierarchy, that holds
// every kavach cgroup.
const parentDir = "kavach"

// maxIDLen keeps the on-disk name (owner tag + id) below NAME_MAX.
const maxIDLen = 200

// Limits are the resource limits of one sandbox. Zero means no limit.
type Limits struct {
	MemoryBytes int64   // memory limit in bytes; swap is disabled with it
	CPUs        float64 // CPU quota in (fractional) cores
	Pids        int64   // maximum number of processes and threads
}

// Applied reports which limits were really set in the kernel, and whether
// the cgroup can be frozen.
type Applied struct {
	Memory, Pids, CPU, Freezer bool
	// SwapOff is true when swap is excluded by the kernel's swap accounting
	// (v1 memory.memsw.limit_in_bytes, v2 memory.swap.max). When the kernel
	// lacks swap accounting, v1 falls back to memory.swappiness=0, which
	// keeps the cgroup's own reclaim from swapping but not global reclaim.
	SwapOff bool
}

// Stats is the resource usage of a cgroup.
type Stats struct {
	CPUTime         time.Duration // user+system CPU time of all processes
	MemoryPeakBytes int64         // peak memory usage (0 if the kernel lacks it)
	OOMKills        int64         // processes killed by the cgroup's OOM killer
	PidsPeak        int64         // peak number of tasks (0 if the kernel lacks it)
}

// Cgroup is one sandbox's cgroup, present in every hierarchy in use.
type Cgroup struct {
	name     string               // as given to New
	lay      *layout              // host layout it was created in
	dirs     []string             // leaf directory per lay.hiers entry
	resDir   [numResources]string // leaf directory serving each resource, "" if none
	applied  Applied              // limits written
	fd       int                  // v2-only: O_RDONLY directory fd, else -1
	mu       sync.Mutex           // serializes Destroy
	gone     atomic.Bool          // set once Destroy succeeded
	fdClosed atomic.Bool          // fd closed by Destroy
	noKill   atomic.Bool          // v2 cgroup.kill found missing
}

// New creates the cgroup "kavach/<id>" in every usable hierarchy and writes
// the limits before any process joins. Limits the host cannot enforce are
// skipped, not failed: Applied tells what was set, and Detect why.
func New(ctx context.Context, name string, l Limits) (*Cgroup, error) {
	id, err := parseName(name)
	if err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	o, err := selfOwner()
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	return create(ctx, hostLayout(), name, o.tag()+"-"+id, l)
}

// parseName checks that name is "kavach/<id>" and returns id.
func parseName(name string) (string, error) {
	id, ok := strings.CutPrefix(name, parentDir+"/")
	if !ok || !validComponent(id) || len(id) > maxIDLen {
		return "", fmt.Errorf("%w: %q (want %s/<id>, id of [A-Za-z0-9._-], at most %d bytes)",
			ErrInvalidName, name, parentDir, maxIDLen)
	}
	return id, nil
}

// validComponent reports whether s is a single safe path component.
func validComponent(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

func (l Limits) validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("%w: memory %d bytes", ErrInvalidLimits, l.MemoryBytes)
	case l.Pids < 0:
		return fmt.Errorf("%w: pids %d", ErrInvalidLimits, l.Pids)
	case l.CPUs < 0 || math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0):
		return fmt.Errorf("%w: cpus %v", ErrInvalidLimits, l.CPUs)
	}
	if l.CPUs > 0 {
		if _, _, err := cpuQuota(l.CPUs); err != nil {
			return err
		}
	}
	return nil
}

// cpuQuota converts cores to a CFS quota and period in microseconds. The
// period is 100ms, or 1s when the quota would fall below the kernel's 1ms
// minimum.
func cpuQuota(cpus float64) (quota, period int64, err error) {
	for _, period = range []int64{100_000, 1_000_000} {
		quota = int64(math.Round(cpus * float64(period)))
		if quota >= 1000 {
			return quota, period, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: cpus %v below the kernel's minimum of 0.001", ErrInvalidLimits, cpus)
}

// open returns a handle for the cgroup at kavach/<leaf> in every hierarchy of
// lay, without touching the filesystem.
func open(lay *layout, name, leaf string) *Cgroup {
	c := &Cgroup{name: name, lay: lay, fd: -1}
	for _, h := range lay.hiers {
		c.dirs = append(c.dirs, filepath.Join(h.mount, parentDir, leaf))
	}
	for r, h := range lay.res {
		for i, hh := range lay.hiers {
			if h == hh {
				c.resDir[r] = c.dirs[i]
			}
		}
	}
	return c
}

// create makes the directories, applies the limits and, on v2-only hosts,
// opens the directory fd for CLONE_INTO_CGROUP.
func create(ctx context.Context, lay *layout, name, leaf string, l Limits) (*Cgroup, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	if len(lay.hiers) == 0 {
		return nil, fmt.Errorf("create cgroup %s: %w: %s", name, ErrUnsupported, lay.support.Reason)
	}
	c := open(lay, name, leaf)
	made, err := c.mkdirs()
	if err == nil {
		err = c.apply(l)
	}
	if err == nil && lay.onlyV2() {
		c.fd, err = unix.Open(c.dirs[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			err = &os.PathError{Op: "open", Path: c.dirs[0], Err: err}
		}
	}
	if err != nil {
		err = fmt.Errorf("create cgroup %s: %w", name, err)
		c.dirs = c.dirs[:made] // never remove what another New created
		if rmErr := c.rmdirs(ctx); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return nil, err
	}
	return c, nil
}

// mkdirs creates the leaf directory in each hierarchy and returns how many
// it created.
func (c *Cgroup) mkdirs() (int, error) {
	for i, h := range c.lay.hiers {
		if err := c.lay.ensureParent(h, false); err != nil {
			return i, err
		}
		err := os.Mkdir(c.dirs[i], 0o755)
		if errors.Is(err, os.ErrNotExist) {
			// The parent vanished behind our back; recreate it once.
			if err = c.lay.ensureParent(h, true); err == nil {
				err = os.Mkdir(c.dirs[i], 0o755)
			}
		}
		if err != nil {
			return i, err
		}
	}
	return len(c.dirs), nil
}

// apply writes the limits into the controllers that serve them.
func (c *Cgroup) apply(l Limits) error {
	if d := c.resDir[resMemory]; d != "" && l.MemoryBytes > 0 {
		if err := c.applyMemory(d, l.MemoryBytes); err != nil {
			return err
		}
	}
	if d := c.resDir[resPids]; d != "" && l.Pids > 0 {
		if err := writeFile(d, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
		c.applied.Pids = true
	}
	if d := c.resDir[resCPU]; d != "" && l.CPUs > 0 {
		if err := c.applyCPU(d, l.CPUs); err != nil {
			return err
		}
	}
	c.applied.Freezer = c.resDir[resFreezer] != ""
	return nil
}

func (c *Cgroup) applyMemory(d string, limit int64) error {
	v := strconv.FormatInt(limit, 10)
	if c.isV2(resMemory) {
		if err := writeFile(d, "memory.max", v); err != nil {
			return err
		}
		c.applied.Memory = true
		err := writeFile(d, "memory.swap.max", "0")
		c.applied.SwapOff = err == nil
		if errors.Is(err, os.ErrNotExist) { // kernel without swap accounting
			return nil
		}
		return err
	}
	// v1: memsw (memory+swap) must be set after, and equal to, the memory
	// limit; equal values leave no room for swap.
	if err := writeFile(d, "memory.limit_in_bytes", v); err != nil {
		return err
	}
	c.applied.Memory = true
	err := writeFile(d, "memory.memsw.limit_in_bytes", v)
	if errors.Is(err, os.ErrNotExist) { // booted without swapaccount
		return writeFile(d, "memory.swappiness", "0")
	}
	c.applied.SwapOff = err == nil
	return err
}

func (c *Cgroup) applyCPU(d string, cpus float64) error {
	quota, period, err := cpuQuota(cpus)
	if err != nil {
		return err
	}
	if c.isV2(resCPU) {
		err = writeFile(d, "cpu.max", fmt.Sprintf("%d %d", quota, period))
	} else if err = writeFile(d, "cpu.cfs_period_us", strconv.FormatInt(period, 10)); err == nil {
		err = writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
	}
	c.applied.CPU = err == nil
	return err
}

// isV2 reports whether resource r is served by the cgroup v2 hierarchy.
func (c *Cgroup) isV2(r resource) bool { return c.lay.res[r] != nil && c.lay.res[r].v2 }

// Name returns the name the cgroup was created with.
func (c *Cgroup) Name() string { return c.name }

// Applied reports which limits were really set.
func (c *Cgroup) Applied() Applied { return c.applied }

// AddProc moves the process pid into the cgroup in every hierarchy.
func (c *Cgroup) AddProc(pid int) error {
	if c.gone.Load() {
		return fmt.Errorf("add pid %d to %s: %w", pid, c.name, ErrDestroyed)
	}
	s := strconv.Itoa(pid)
	for _, d := range c.dirs {
		if err := writeFile(d, "cgroup.procs", s); err != nil {
			return fmt.Errorf("add pid %d to %s: %w", pid, c.name, err)
		}
	}
	return nil
}

// FD returns a directory fd of the cgroup for SysProcAttr.UseCgroupFD and
// CgroupFD (clone3 CLONE_INTO_CGROUP), so a child starts inside the cgroup
// with no later AddProc. It exists only when every hierarchy in use is v2;
// otherwise it returns false. The fd belongs to the Cgroup: do not close it.
// It stays valid until Destroy.
func (c *Cgroup) FD() (int, bool) {
	if c.fd < 0 || c.fdClosed.Load() {
		return -1, false
	}
	return c.fd, true
}
