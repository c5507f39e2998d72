package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Support says which cgroup features kavach can use on this host.
type Support struct {
	// Version is 2 when every hierarchy in use is cgroup v2, 1 when at least
	// one v1 hierarchy is in use, and 0 when no cgroup can be used at all.
	Version int
	// Memory, Pids, CPU and Freezer report whether the memory limit, the pids
	// limit, the CPU quota and pause/resume can be enforced.
	Memory, Pids, CPU, Freezer bool
	// Reason describes, per controller, what is used from where and why
	// anything is missing.
	Reason string
}

// resource is one thing kavach uses a cgroup hierarchy for.
type resource int

const (
	resMemory  resource = iota // memory limit, peak, OOM kills
	resPids                    // pids limit
	resCPU                     // CPU quota
	resCPUAcct                 // CPU time accounting
	resFreezer                 // pause/resume
	numResources
)

// controllerNames holds the kernel's subsystem name for each resource.
var controllerNames = [numResources]string{"memory", "pids", "cpu", "cpuacct", "freezer"}

// hierarchy is one mounted cgroup hierarchy that kavach places processes in.
type hierarchy struct {
	mount string // mount point, e.g. /sys/fs/cgroup/memory
	v2    bool
}

// layout is the resolved cgroup layout of the host.
type layout struct {
	res     [numResources]*hierarchy // nil where the resource is unusable
	hiers   []*hierarchy             // distinct hierarchies in use, fixed order
	support Support

	parentMu sync.Mutex
	parentOK map[*hierarchy]bool // parent directory known to be ready
}

// hostFacts is everything detection reads from the host, gathered up front so
// the resolution logic can be tested against other layouts.
type hostFacts struct {
	mountinfo   string                       // contents of /proc/self/mountinfo
	procCgroups string                       // contents of /proc/cgroups ("" if absent)
	readFile    func(string) (string, error) // reads a file (v2 cgroup.controllers)
	writable    func(string) error           // nil if the directory is writable
	kernel      [2]int                       // major, minor
}

var (
	detectOnce   sync.Once
	cachedLayout *layout
)

// Detect reports which cgroup features are usable. The host is inspected once
// per process; later calls return the cached answer.
func Detect() Support { return hostLayout().support }

// hostLayout returns the cached layout of this host.
func hostLayout() *layout {
	detectOnce.Do(func() { cachedLayout = resolve(readHostFacts()) })
	return cachedLayout
}

func readHostFacts() hostFacts {
	f := hostFacts{
		readFile: func(p string) (string, error) {
			b, err := os.ReadFile(p)
			return string(b), err
		},
		writable: func(p string) error { return unix.Access(p, unix.W_OK) },
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		f.mountinfo = string(b)
	}
	if b, err := os.ReadFile("/proc/cgroups"); err == nil {
		f.procCgroups = string(b)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.kernel = parseKernel(unix.ByteSliceToString(u.Release[:]))
	}
	return f
}

// parseKernel extracts major and minor from a release such as "6.18.44-x".
func parseKernel(release string) [2]int {
	var v [2]int
	parts := strings.SplitN(release, ".", 3)
	for i := 0; i < 2 && i < len(parts); i++ {
		end := strings.IndexFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(parts[i])
		}
		v[i], _ = strconv.Atoi(parts[i][:end])
	}
	return v
}

// subsys is one line of /proc/cgroups.
type subsys struct {
	hierarchy int
	enabled   bool
}

// parseProcCgroups maps subsystem names to their /proc/cgroups entry.
func parseProcCgroups(s string) map[string]subsys {
	m := map[string]subsys{}
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		h, err1 := strconv.Atoi(f[1])
		e, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil {
			m[f[0]] = subsys{hierarchy: h, enabled: e == 1}
		}
	}
	return m
}

// cgroupMounts holds the first mount point of each v1 controller and of the
// cgroup2 hierarchy found in mountinfo.
type cgroupMounts struct {
	v1 map[string]string // controller -> mount point
	v2 string
}

// parseMountinfo finds cgroup mounts. Only the first mount of a hierarchy is
// kept; bind mounts of the same hierarchy appear later and are redundant.
func parseMountinfo(s string) cgroupMounts {
	m := cgroupMounts{v1: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		mnt := unescapeMount(pf[4])
		switch qf[0] {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				if _, seen := m.v1[opt]; !seen && opt != "rw" && opt != "ro" && !strings.Contains(opt, "=") {
					m.v1[opt] = mnt
				}
			}
		}
	}
	return m
}

// unescapeMount undoes the octal escapes (\040 etc.) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// resolve decides, per resource, which hierarchy kavach uses, and explains.
func resolve(f hostFacts) *layout {
	mounts := parseMountinfo(f.mountinfo)
	subs := parseProcCgroups(f.procCgroups)
	v2ctrls, v2note := v2Controllers(f, mounts.v2)
	l := &layout{}
	var reasons []string
	byMount := map[string]*hierarchy{}
	intern := func(mount string, v2 bool) *hierarchy {
		if h, ok := byMount[mount]; ok {
			return h
		}
		h := &hierarchy{mount: mount, v2: v2}
		byMount[mount] = h
		l.hiers = append(l.hiers, h)
		return h
	}
	for r := range numResources {
		h, why := pick(f, r, mounts, subs, v2ctrls, v2note)
		if h != nil {
			l.res[r] = intern(h.mount, h.v2)
		}
		reasons = append(reasons, why)
	}
	l.support = summarize(l, reasons)
	return l
}

// v2Controllers reads the controllers available at the cgroup2 root and
// whether the hierarchy can be written; the note explains a failure.
func v2Controllers(f hostFacts, mount string) ([]string, string) {
	if mount == "" {
		return nil, "no cgroup v2 mount"
	}
	if err := f.writable(mount); err != nil {
		return nil, fmt.Sprintf("cgroup v2 at %s not writable: %v", mount, err)
	}
	s, err := f.readFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Sprintf("cgroup v2 at %s: %v", mount, err)
	}
	return strings.Fields(s), ""
}

// pick chooses the hierarchy for one resource. A controller bound to a v1
// hierarchy cannot be on v2 at the same time, so v1 wins when mounted.
func pick(f hostFacts, r resource, m cgroupMounts, subs map[string]subsys, v2ctrls []string, v2note string) (*hierarchy, string) {
	name := controllerNames[r]
	if s, known := subs[name]; known && !s.enabled {
		return nil, fmt.Sprintf("%s: controller disabled on the kernel command line", name)
	}
	prefix := ""
	if m.v2 != "" && v2note == "" && !v2Has(r, v2ctrls, f.kernel) {
		prefix = fmt.Sprintf("cgroup v2 mounted at %s but %s controller not enabled there (v2 controllers: %s); ",
			m.v2, name, orNone(v2ctrls))
	}
	if mnt, ok := m.v1[name]; ok {
		if err := f.writable(mnt); err != nil {
			return nil, fmt.Sprintf("%sv1 %s at %s not writable: %v", prefix, name, mnt, err)
		}
		return &hierarchy{mount: mnt}, fmt.Sprintf("%susing v1 %s at %s", prefix, name, mnt)
	}
	if v2note == "" && v2Has(r, v2ctrls, f.kernel) {
		return &hierarchy{mount: m.v2, v2: true}, fmt.Sprintf("using v2 %s at %s", name, m.v2)
	}
	if s, known := subs[name]; known && s.hierarchy != 0 {
		return nil, fmt.Sprintf("%s%s: bound to v1 hierarchy %d but not mounted", prefix, name, s.hierarchy)
	}
	if v2note != "" {
		return nil, fmt.Sprintf("%s: no v1 mount and %s", name, v2note)
	}
	return nil, fmt.Sprintf("%s%s: not mounted as v1", prefix, name)
}

// v2Has reports whether the cgroup2 hierarchy provides a resource. CPU time
// is in every v2 cgroup's cpu.stat; the freezer is built in since Linux 5.2.
func v2Has(r resource, ctrls []string, kernel [2]int) bool {
	switch r {
	case resCPUAcct:
		return true
	case resFreezer:
		return kernel[0] > 5 || (kernel[0] == 5 && kernel[1] >= 2)
	}
	return slices.Contains(ctrls, controllerNames[r])
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// summarize fills Support from the resolved layout.
func summarize(l *layout, reasons []string) Support {
	s := Support{
		Memory:  l.res[resMemory] != nil,
		Pids:    l.res[resPids] != nil,
		CPU:     l.res[resCPU] != nil,
		Freezer: l.res[resFreezer] != nil,
		Reason:  strings.Join(reasons, "; "),
	}
	if len(l.hiers) > 0 {
		s.Version = 2
		for _, h := range l.hiers {
			if !h.v2 {
				s.Version = 1
			}
		}
	}
	return s
}

// onlyV2 reports whether every hierarchy in use is cgroup v2.
func (l *layout) onlyV2() bool { return len(l.hiers) == 1 && l.hiers[0].v2 }
