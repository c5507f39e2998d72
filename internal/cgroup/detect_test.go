package cgroup

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const hybridProcCgroups = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
memory	4	41	1
freezer	6	1	1
hugetlb	0	1	1
pids	8	1	1
`

const v2Mountinfo = `25 1 0:22 / / rw - ext4 /dev/root rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

const v2ProcCgroups = `#subsys_name	hierarchy	num_cgroups	enabled
cpu	0	80	1
cpuacct	0	80	1
memory	0	80	1
freezer	0	80	1
pids	0	80	1
`

// facts builds host facts with the given v2 controllers and writability.
func facts(mountinfo, procCgroups, v2ctrls string, writeErr error, kernel [2]int) hostFacts {
	return hostFacts{
		mountinfo:   mountinfo,
		procCgroups: procCgroups,
		readFile: func(p string) (string, error) {
			if strings.HasSuffix(p, "/cgroup.controllers") {
				return v2ctrls, nil
			}
			return "", fs.ErrNotExist
		},
		writable: func(string) error { return writeErr },
		kernel:   kernel,
	}
}

func TestResolveHybrid(t *testing.T) {
	l := resolve(facts(hybridMountinfo, hybridProcCgroups, "hugetlb\n", nil, [2]int{6, 18}))
	s := l.support
	if s.Version != 1 || !s.Memory || !s.Pids || !s.CPU || !s.Freezer {
		t.Fatalf("support = %+v", s)
	}
	want := "cgroup v2 mounted at /sys/fs/cgroup/unified but memory controller not enabled there " +
		"(v2 controllers: hugetlb); using v1 memory at /sys/fs/cgroup/memory"
	if !strings.Contains(s.Reason, want) {
		t.Errorf("reason %q lacks %q", s.Reason, want)
	}
	if len(l.hiers) != 5 || l.onlyV2() {
		t.Errorf("hierarchies = %d, onlyV2 = %v; want 5 v1 hierarchies", len(l.hiers), l.onlyV2())
	}
	for r, h := range l.res {
		if h == nil || h.v2 || !strings.HasSuffix(h.mount, "/"+controllerNames[r]) {
			t.Errorf("%s -> %+v", controllerNames[r], h)
		}
	}
}

func TestResolveV2(t *testing.T) {
	l := resolve(facts(v2Mountinfo, v2ProcCgroups, "cpuset cpu io memory hugetlb pids rdma misc\n", nil, [2]int{6, 1}))
	s := l.support
	if s.Version != 2 || !s.Memory || !s.Pids || !s.CPU || !s.Freezer || !l.onlyV2() {
		t.Fatalf("support = %+v, onlyV2 = %v", s, l.onlyV2())
	}
	if l.hiers[0].mount != "/sys/fs/cgroup" {
		t.Errorf("mount = %s", l.hiers[0].mount)
	}
	if got := l.v2Controllers(l.hiers[0]); strings.Join(got, " ") != "memory pids cpu" {
		t.Errorf("controllers to enable = %v", got)
	}
}

func TestResolveV2Partial(t *testing.T) {
	// Old kernel (no v2 freezer) with the memory controller not delegated.
	s := resolve(facts(v2Mountinfo, v2ProcCgroups, "cpu pids", nil, [2]int{5, 1})).support
	if s.Version != 2 || s.Memory || !s.Pids || !s.CPU || s.Freezer {
		t.Fatalf("support = %+v", s)
	}
	if !strings.Contains(s.Reason, "cgroup v2 mounted at /sys/fs/cgroup but memory controller not enabled there (v2 controllers: cpu pids)") {
		t.Errorf("reason = %q", s.Reason)
	}
}

func TestResolveUnwritable(t *testing.T) {
	s := resolve(facts(v2Mountinfo, v2ProcCgroups, "memory pids cpu", fs.ErrPermission, [2]int{6, 1})).support
	if s.Version != 0 || s.Memory || s.Freezer {
		t.Fatalf("support = %+v", s)
	}
	if !strings.Contains(s.Reason, "cgroup v2 at /sys/fs/cgroup not writable: permission denied") {
		t.Errorf("reason = %q", s.Reason)
	}
	s = resolve(facts(hybridMountinfo, hybridProcCgroups, "", errors.New("read-only file system"), [2]int{6, 1})).support
	if s.Version != 0 || !strings.Contains(s.Reason, "v1 memory at /sys/fs/cgroup/memory not writable: read-only file system") {
		t.Errorf("support = %+v", s)
	}
}

func TestResolveNone(t *testing.T) {
	s := resolve(facts("25 1 0:22 / / rw - ext4 /dev/root rw\n", "", "", nil, [2]int{6, 1})).support
	if s.Version != 0 || s.Memory || s.Pids || s.CPU || s.Freezer {
		t.Fatalf("support = %+v", s)
	}
	if !strings.Contains(s.Reason, "memory: no v1 mount and no cgroup v2 mount") {
		t.Errorf("reason = %q", s.Reason)
	}
}

func TestResolveDisabledAndComounted(t *testing.T) {
	mi := `32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:32 / /mnt/memory\040copy rw - cgroup cgroup rw,memory
`
	pc := "cpu\t1\t1\t1\ncpuacct\t1\t1\t1\nmemory\t4\t1\t0\npids\t0\t1\t1\n"
	l := resolve(facts(mi, pc, "", nil, [2]int{6, 1}))
	if l.support.Memory || !l.support.CPU || l.support.Pids {
		t.Fatalf("support = %+v", l.support)
	}
	if !strings.Contains(l.support.Reason, "memory: controller disabled on the kernel command line") {
		t.Errorf("reason = %q", l.support.Reason)
	}
	if l.res[resCPU] != l.res[resCPUAcct] || len(l.hiers) != 1 {
		t.Errorf("co-mounted cpu,cpuacct not shared: %d hierarchies", len(l.hiers))
	}
	if got := parseMountinfo(mi).v1["memory"]; got != "/sys/fs/cgroup/memory" {
		t.Errorf("first memory mount = %q", got)
	}
	if got := unescapeMount(`/mnt/a\040b\134c`); got != `/mnt/a b\c` {
		t.Errorf("unescape = %q", got)
	}
}

func TestParseKernel(t *testing.T) {
	for in, want := range map[string][2]int{"6.18.44-fc-v657": {6, 18}, "5.2": {5, 2}, "4.19.0+": {4, 19}, "x": {0, 0}} {
		if got := parseKernel(in); got != want {
			t.Errorf("parseKernel(%q) = %v, want %v", in, got, want)
		}
	}
}

// Detect on this host is self-consistent: every usable controller is
// explained by a "using" line, every missing one by something else.
func TestDetectHost(t *testing.T) {
	s := Detect()
	t.Logf("%+v", s)
	if Detect() != s {
		t.Fatal("Detect not stable")
	}
	for name, ok := range map[string]bool{"memory": s.Memory, "pids": s.Pids, "cpu": s.CPU, "freezer": s.Freezer} {
		using := strings.Contains(s.Reason, "using v1 "+name+" at") || strings.Contains(s.Reason, "using v2 "+name+" at")
		if ok != using {
			t.Errorf("%s usable=%v but reason %q", name, ok, s.Reason)
		}
	}
}
