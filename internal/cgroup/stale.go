package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// owner identifies the kavach process that created a cgroup. The start time
// (clock ticks after boot, /proc/<pid>/stat field 22) tells a reused pid
// from the original process.
type owner struct {
	pid   int
	start uint64
}

// tag is the owner's part of an on-disk cgroup name.
func (o owner) tag() string { return strconv.Itoa(o.pid) + "." + strconv.FormatUint(o.start, 10) }

// parseOwner reads the owner tag of an on-disk name "<pid>.<start>-<id>".
func parseOwner(dirName string) (owner, bool) {
	tag, id, ok := strings.Cut(dirName, "-")
	if !ok || !validComponent(id) {
		return owner{}, false
	}
	p, s, ok := strings.Cut(tag, ".")
	if !ok {
		return owner{}, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return owner{}, false
	}
	return owner{pid: pid, start: start}, true
}

// alive reports whether the owner still runs. Only a missing process counts
// as dead: any doubt (e.g. /proc not readable) keeps the cgroup.
func (o owner) alive() bool {
	start, err := processStart(o.pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	return err != nil || start == o.start
}

// processStart returns the start time of pid from /proc/<pid>/stat.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: parse
	// after the last ')'. Field 3 (state) is then index 0, field 22 index 19.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

var (
	selfOnce sync.Once
	selfO    owner
	selfErr  error
)

// selfOwner is this process as an owner.
func selfOwner() (owner, error) {
	selfOnce.Do(func() {
		selfO.pid = os.Getpid()
		selfO.start, selfErr = processStart(selfO.pid)
		if selfErr != nil {
			selfErr = fmt.Errorf("read own start time: %w", selfErr)
		}
	})
	return selfO, selfErr
}

// CleanupStale removes the kavach cgroups whose owning kavach process is no
// longer running, killing any process left in them. Cgroups of live owners,
// and directories not named by kavach, are left alone. It returns how many
// cgroups were removed.
func CleanupStale(ctx context.Context) (removed int, err error) {
	return cleanupStale(ctx, hostLayout())
}

func cleanupStale(ctx context.Context, lay *layout) (int, error) {
	leaves, err := staleLeaves(lay)
	removed := 0
	for _, leaf := range leaves {
		id := leaf[strings.IndexByte(leaf, '-')+1:]
		e := open(lay, parentDir+"/"+id, leaf).Destroy(ctx)
		if e != nil {
			err = errors.Join(err, fmt.Errorf("remove stale cgroup %s: %w", leaf, e))
			continue
		}
		removed++
	}
	return removed, err
}

// staleLeaves lists the on-disk names, across all hierarchies, of kavach
// cgroups whose owner is dead.
func staleLeaves(lay *layout) ([]string, error) {
	var leaves []string
	var errs []error
	for _, h := range lay.hiers {
		ents, err := os.ReadDir(filepath.Join(h.mount, parentDir))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list stale cgroups: %w", err))
			continue
		}
		for _, e := range ents {
			o, ok := parseOwner(e.Name())
			if e.IsDir() && ok && !slices.Contains(leaves, e.Name()) && !o.alive() {
				leaves = append(leaves, e.Name())
			}
		}
	}
	return leaves, errors.Join(errs...)
}
