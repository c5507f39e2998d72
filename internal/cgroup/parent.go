package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ensureParent creates the kavach parent directory in hierarchy h and, on
// v2, enables the controllers kavach uses for the parent's children. The
// result is cached; force re-checks after the directory vanished.
func (l *layout) ensureParent(h *hierarchy, force bool) error {
	l.parentMu.Lock()
	defer l.parentMu.Unlock()
	if l.parentOK[h] && !force {
		return nil
	}
	parent := filepath.Join(h.mount, parentDir)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create kavach parent cgroup: %w", err)
	}
	if h.v2 {
		ctrls := l.v2Controllers(h)
		// The root enables them for "kavach", "kavach" for the sandboxes.
		for _, d := range []string{h.mount, parent} {
			if err := enableControllers(d, ctrls); err != nil {
				return err
			}
		}
	}
	if l.parentOK == nil {
		l.parentOK = map[*hierarchy]bool{}
	}
	l.parentOK[h] = true
	return nil
}

// v2Controllers lists the v2 controllers that kavach takes from h.
func (l *layout) v2Controllers(h *hierarchy) []string {
	var ctrls []string
	for _, r := range []resource{resMemory, resPids, resCPU} {
		if l.res[r] == h {
			ctrls = append(ctrls, controllerNames[r])
		}
	}
	return ctrls
}

// enableControllers adds the controllers missing from dir's
// cgroup.subtree_control. Controllers already enabled are not rewritten.
func enableControllers(dir string, ctrls []string) error {
	cur, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return fmt.Errorf("enable controllers: %w", err)
	}
	have := strings.Fields(cur)
	var add []string
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enable controllers %s: %w", strings.Join(add, " "), err)
	}
	return nil
}
