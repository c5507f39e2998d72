package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/workfs"
)

// idPrefix starts every container id kavach creates. The full form is
// "kavach-<owner pid>.<owner start time>-<name>": a later kavach process can
// tell whether the owner still runs (the start time tells a reused pid from
// the original).
const idPrefix = "kavach-"

var (
	selfTagOnce sync.Once
	selfTag     string
)

// ContainerID returns the container id for a sandbox name, tagged with the
// calling process as owner. Characters outside [A-Za-z0-9_.-] become '_'.
func ContainerID(name string) string {
	selfTagOnce.Do(func() {
		start, _ := processStart(os.Getpid())
		selfTag = strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(start, 10)
	})
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, name)
	if len(clean) > 100 {
		clean = clean[:100]
	}
	return idPrefix + selfTag + "-" + clean
}

// BundleDir holds the bundles of every kavach container.
func BundleDir() string { return filepath.Join(StateDir(), "bundles") }

// ownerAlive reports whether the kavach process that created id still runs.
// Ids that are not kavach's, and any doubt, count as alive.
func ownerAlive(id string) bool {
	rest, ok := strings.CutPrefix(id, idPrefix)
	if !ok {
		return true
	}
	tag, _, ok := strings.Cut(rest, "-")
	p, s, ok2 := strings.Cut(tag, ".")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || pid <= 0 {
		return true
	}
	now, err := processStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	return err != nil || now == start
}

// processStart reads the start time of a process (clock ticks after boot,
// field 22 of /proc/<pid>/stat).
func processStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// CleanupStale deletes the containers, bundles and empty cgroups that
// kavach processes which no longer run left under this runtime's root. It is best effort:
// what cannot be removed now is retried by the next kavach process.
func CleanupStale(ctx context.Context, r *Runtime) {
	ids, _ := r.List(ctx)
	for _, id := range ids {
		if !ownerAlive(id) {
			_ = r.Delete(ctx, id)
		}
	}
	entries, _ := os.ReadDir(BundleDir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), idPrefix) && !ownerAlive(e.Name()) {
			dir := filepath.Join(BundleDir(), e.Name())
			_ = workfs.RemoveAll(dir, filepath.Join(dir, "work"))
		}
	}
	// Files the runtime keeps per container that delete does not always
	// remove (runsc's "<id>_sandbox:<id>.lock" after a cut-short create).
	files, _ := os.ReadDir(r.root)
	for _, e := range files {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), idPrefix) && !ownerAlive(e.Name()) {
			_ = os.Remove(filepath.Join(r.root, e.Name()))
		}
	}
	done := map[string]bool{}
	for _, d := range staleCgroupDirs() {
		if id := filepath.Base(d); !done[id] && !ownerAlive(id) {
			done[id] = true
			killCgroupProcs(id)
			removeCgroups(id)
		}
	}
}

var sweepOnce sync.Once

// SweepStale removes, once per process, what kavach processes that no
// longer run left under every runtime's state root: containers (still
// running their payloads: crun, runc and runsc containers outlive the
// process that created them), bundles and cgroups. When no bundle or cgroup
// of a dead owner exists it costs a directory read and a glob; otherwise it
// lists and deletes through each runtime installed, without probing it.
func SweepStale(ctx context.Context) {
	sweepOnce.Do(func() {
		if !staleLeft() {
			return
		}
		for _, k := range []Kind{Crun, Runc, Runsc} {
			root := filepath.Join(StateDir(), string(k))
			path, err := exec.LookPath(string(k))
			if _, serr := os.Stat(root); serr != nil || err != nil {
				continue
			}
			rt := &Runtime{kind: k, path: path, root: root, rootless: os.Geteuid() != 0}
			if k == Runsc {
				rt.platform = runscPlatform(ctx, path)
			}
			CleanupStale(ctx, rt)
		}
	})
}

// staleLeft reports whether a bundle, a cgroup or a runtime state file of
// a kavach process that no longer runs exists. Every container has a bundle from before the
// runtime creates it until after it is deleted.
func staleLeft() bool {
	entries, _ := os.ReadDir(BundleDir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), idPrefix) && !ownerAlive(e.Name()) {
			return true
		}
	}
	for _, d := range staleCgroupDirs() {
		if !ownerAlive(filepath.Base(d)) {
			return true
		}
	}
	for _, k := range []Kind{Crun, Runc, Runsc} {
		files, _ := os.ReadDir(filepath.Join(StateDir(), string(k)))
		for _, e := range files {
			if strings.HasPrefix(e.Name(), idPrefix) && !ownerAlive(e.Name()) {
				return true
			}
		}
	}
	return false
}

// staleCgroupDirs lists the cgroup directories named after kavach
// containers, in every v1 hierarchy and in v2.
func staleCgroupDirs() []string { return cgroupDirs(idPrefix + "*") }

// removeCgroups removes the container's cgroup directories that are left
// once the runtime deleted it (or never recorded it: a runtime killed
// during create may have made them already). rmdir only succeeds on an
// empty cgroup, so a live container's are never touched.
func removeCgroups(id string) {
	for _, d := range cgroupDirs(id) {
		_ = os.Remove(d)
	}
}

// cgroupDirs lists the existing cgroup directories whose name matches
// pattern (a container id, or a glob of ids), in every v1 hierarchy and in
// v2.
func cgroupDirs(pattern string) []string {
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", cgroupParent, pattern))
	v2, _ := filepath.Glob(filepath.Join(cgroupRoot, cgroupParent, pattern))
	return append(dirs, v2...)
}

// killCgroupProcs kills every process left in the container's cgroups. A
// runtime cut short while it creates a container can leave the container's
// processes (gVisor's sandbox and gofer) running without having recorded
// the container, so that no delete reaches them; only the cgroup still
// names them. It thaws a frozen cgroup first (frozen processes die only
// once thawed) and gives up after about a second.
func killCgroupProcs(id string) {
	dirs := cgroupDirs(id)
	for range 100 {
		var pids []int
		for _, d := range dirs {
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
			data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
