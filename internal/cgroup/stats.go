package cgroup

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Stats reads the cgroup's CPU time, peak memory, OOM kills and peak task
// count. Figures a controller or kernel does not provide read as zero.
func (c *Cgroup) Stats() (Stats, error) {
	var s Stats
	var err error
	if s.CPUTime, err = c.cpuTime(); err != nil {
		return s, fmt.Errorf("stats of %s: %w", c.name, err)
	}
	if d := c.resDir[resMemory]; d != "" {
		peak := "memory.max_usage_in_bytes"
		if c.isV2(resMemory) {
			peak = "memory.peak" // Linux 5.19+
		}
		if s.MemoryPeakBytes, err = optional(readInt(d, peak)); err != nil {
			return s, fmt.Errorf("stats of %s: %w", c.name, err)
		}
		if s.OOMKills, err = c.oomKills(); err != nil {
			return s, fmt.Errorf("stats of %s: %w", c.name, err)
		}
	}
	if d := c.resDir[resPids]; d != "" {
		if s.PidsPeak, err = optional(readInt(d, "pids.peak")); err != nil { // Linux 6.1+
			return s, fmt.Errorf("stats of %s: %w", c.name, err)
		}
	}
	return s, nil
}

// optional turns a missing control file into a zero value.
func optional(n int64, err error) (int64, error) {
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// CountsCPU reports whether the cgroup accounts its processes' CPU time
// (Stats.CPUTime reads zero otherwise).
func (c *Cgroup) CountsCPU() bool { return c.resDir[resCPUAcct] != "" }

func (c *Cgroup) cpuTime() (time.Duration, error) {
	d := c.resDir[resCPUAcct]
	switch {
	case d == "":
		return 0, nil
	case c.isV2(resCPUAcct):
		us, err := readKey(d, "cpu.stat", "usage_usec")
		return time.Duration(us) * time.Microsecond, err
	default:
		ns, err := readInt(d, "cpuacct.usage")
		return time.Duration(ns), err
	}
}

func (c *Cgroup) oomKills() (int64, error) {
	d := c.resDir[resMemory]
	if c.isV2(resMemory) {
		return readKey(d, "memory.events", "oom_kill")
	}
	return readKey(d, "memory.oom_control", "oom_kill")
}

// OOMKilled reports whether the kernel's OOM killer killed a process of the
// cgroup because of its memory limit.
func (c *Cgroup) OOMKilled() (bool, error) {
	if c.resDir[resMemory] == "" {
		return false, fmt.Errorf("oom state of %s: no memory controller: %w", c.name, ErrUnsupported)
	}
	n, err := c.oomKills()
	if err != nil {
		return false, fmt.Errorf("oom state of %s: %w", c.name, err)
	}
	return n > 0, nil
}
