package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// Cgroups locates the host cgroup directories of one container, as read
// from /proc/<init pid>/cgroup, for kavach's own accounting: OOM kills,
// limits read back, and the processes to kill on timeout.
type Cgroups struct {
	// dirs maps a v1 controller name ("memory", "pids", ...) to its
	// directory; "" holds the cgroup2 directory.
	dirs map[string]string
}

// ContainerCgroups reads the cgroups of the process pid.
func ContainerCgroups(pid int) (*Cgroups, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("container cgroups: %w", err)
	}
	cg := &Cgroups{dirs: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			cg.dirs[""] = filepath.Join(unifiedMount(), parts[2])
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			cg.dirs[ctrl] = filepath.Join(cgroupRoot, ctrl, parts[2])
		}
	}
	return cg, nil
}

// unifiedMount is the cgroup2 mount: /sys/fs/cgroup itself on a pure v2
// host, /sys/fs/cgroup/unified on a hybrid one.
func unifiedMount() string {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroupRoot
	}
	return filepath.Join(cgroupRoot, "unified")
}

// file returns the path of a control file: the v1 controller's if the
// container has one, else the cgroup2 one.
func (c *Cgroups) file(ctrl, v1, v2 string) string {
	if d, ok := c.dirs[ctrl]; ok {
		return filepath.Join(d, v1)
	}
	if d, ok := c.dirs[""]; ok && v2 != "" {
		return filepath.Join(d, v2)
	}
	return ""
}

// OOMKills returns how many processes the memory cgroup's OOM killer has
// killed (v1 memory.oom_control, v2 memory.events).
func (c *Cgroups) OOMKills() int64 {
	return keyedValue(c.file("memory", "memory.oom_control", "memory.events"), "oom_kill")
}

// MemoryLimit reads back the memory limit in bytes (-1: none or unknown).
func (c *Cgroups) MemoryLimit() int64 {
	return readLimit(c.file("memory", "memory.limit_in_bytes", "memory.max"))
}

// PidsLimit reads back the pids limit (-1: none or unknown).
func (c *Cgroups) PidsLimit() int64 { return readLimit(c.file("pids", "pids.max", "pids.max")) }

// CPUQuota reads back the CFS quota in microseconds per period (-1: none).
func (c *Cgroups) CPUQuota() int64 {
	if p := c.file("cpu", "cpu.cfs_quota_us", ""); p != "" {
		return readLimit(p)
	}
	return readLimit(c.file("cpu", "", "cpu.max")) // "quota period" or "max period"
}

// CPUUsage returns the CPU time the container's processes have used (v1
// cpuacct.usage, v2 cpu.stat usage_usec); ok is false when it cannot be
// read.
func (c *Cgroups) CPUUsage() (used time.Duration, ok bool) {
	if d, v1 := c.dirs["cpuacct"]; v1 {
		data, err := os.ReadFile(filepath.Join(d, "cpuacct.usage"))
		ns, perr := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return time.Duration(ns), err == nil && perr == nil
	}
	if d, v2 := c.dirs[""]; v2 {
		if _, err := os.Stat(filepath.Join(d, "cpu.stat")); err == nil {
			return time.Duration(keyedValue(filepath.Join(d, "cpu.stat"), "usage_usec")) * time.Microsecond, true
		}
	}
	return 0, false
}

// Procs lists the processes in the container's cgroup.
func (c *Cgroups) Procs() ([]int, error) {
	p := c.file("pids", "cgroup.procs", "cgroup.procs")
	if p == "" {
		p = c.file("memory", "cgroup.procs", "cgroup.procs")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("container processes: %w", err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// keyedValue reads "key N" from a flat-keyed control file (0 if absent).
func keyedValue(path, key string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// readLimit reads the first number of a limit file; "max", a v1 "no limit"
// value (huge or -1) and errors give -1.
func readLimit(path string) int64 {
	if path == "" {
		return -1
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 || n >= 1<<62 {
		return -1
	}
	return n
}
