package process

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/policy"
)

// Read-write binds and the sandbox user. As root, the payload runs as
// sandboxUID, which cannot write the caller's directories. A read-write
// bind whose source belongs to someone else is therefore an idmapped mount
// (mount_setattr MOUNT_ATTR_IDMAP): inside, the owner's files appear as the
// sandbox user's, and what the sandbox creates belongs to the owner on the
// host. No other file changes owner, and nothing outside the bind is
// affected. The mapping is described by a user namespace that exists only
// for that purpose (owner ↔ sandbox user), created once per owner and reused.

const holderName = "kavach-userns-holder"

func init() {
	// The holder only keeps its user namespace alive until the parent has
	// opened it: it waits for stdin to close.
	reexec.Register(holderName, func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	})
}

type owner struct{ uid, gid int }

var (
	idmapMu    sync.Mutex
	idmapCache = map[owner]*os.File{}
)

// idmapUserns returns an fd of a user namespace mapping the sandbox user to
// o, for idmapped mounts.
func idmapUserns(o owner) (*os.File, error) {
	idmapMu.Lock()
	defer idmapMu.Unlock()
	if f := idmapCache[o]; f != nil {
		return f, nil
	}
	cmd := exec.Command(reexec.Self)
	cmd.Args = []string{holderName}
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER,
		// An idmapped mount maps on-disk ids "down" through the namespace:
		// the owner's id is the namespace side, the sandbox user's the host side.
		UidMappings: []syscall.SysProcIDMap{{ContainerID: o.uid, HostID: sandboxUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: o.gid, HostID: sandboxGID, Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("idmap user namespace: %w", err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	stdin.Close()
	_ = cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("idmap user namespace: %w", err)
	}
	idmapCache[o] = f
	return f, nil
}

// idmapFiles decides which rw binds need an idmapped mount and returns the
// user namespace fds to hand to the init (config.Mounts[i].IDMap indexes them).
func idmapFiles(cfg *initConfig, userns bool) ([]*os.File, error) {
	for i := range cfg.Mounts {
		cfg.Mounts[i].IDMap = -1
	}
	if os.Geteuid() != 0 || userns {
		// Rootless, the payload already is the caller. In a user namespace
		// by choice, the kernel allows idmapping a host file system only to
		// the initial namespace's administrator: plain binds, which the
		// sandbox user must be allowed to write.
		return nil, nil
	}
	var files []*os.File
	index := map[*os.File]int{}
	for i := range cfg.Mounts {
		m := &cfg.Mounts[i]
		m.IDMap = -1
		var st unix.Stat_t
		if !m.RW {
			continue
		}
		if err := backend.StatMountSource(m.Source, &st); err != nil {
			return nil, err
		}
		if int(st.Uid) == cfg.UID {
			continue
		}
		if err := checkNoSetID(m.Source, int(st.Uid), int(st.Gid)); err != nil {
			return nil, err
		}
		f, err := idmapUserns(owner{int(st.Uid), int(st.Gid)})
		if err != nil {
			return nil, err
		}
		if _, ok := index[f]; !ok {
			index[f] = len(files)
			files = append(files, f)
		}
		m.IDMap = index[f]
	}
	return files, nil
}

// bindIDMapped binds the directory open at srcFD (path src, for errors) on
// the mount point open at dstFD, through the user namespace usernsFD.
func bindIDMapped(srcFD int, src string, dstFD, usernsFD int) error {
	fd, err := unix.OpenTree(srcFD, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(usernsFD),
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", dstFD, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s: %w", src, err)
	}
	return nil
}

// ErrSetIDUnsafe refuses an idmapped read-write bind without a seccomp
// filter: only the filter stops the payload from creating set-user-ID
// programs that would belong to the directory's owner on the host.
var ErrSetIDUnsafe = errors.New("process: a read-write bind of a directory the sandbox user does not own needs a seccomp profile")

// checkIDMaps refuses policies whose read-write binds would be idmapped
// while no seccomp filter stops set-id mode bits.
func checkIDMaps(p *policy.Policy, uid int) error {
	if os.Geteuid() != 0 || p.UserNamespace || p.Seccomp != policy.SeccompOff {
		return nil
	}
	for _, m := range p.Filesystem.Mounts {
		var st unix.Stat_t
		if m.Mode == policy.ReadWrite && backend.StatMountSource(m.Source, &st) == nil && int(st.Uid) != uid {
			return fmt.Errorf("%w: %s belongs to uid %d (use seccomp basic or strict, or make it owned by uid %d)",
				ErrSetIDUnsafe, m.Source, st.Uid, uid)
		}
	}
	return nil
}

// ErrSetIDInside refuses to idmap a directory that holds set-id programs or
// programs with file capabilities of its owner: mapped to the sandbox user,
// they would be writable from inside, and a write through a shared mapping
// keeps the set-id bit and the capabilities.
var ErrSetIDInside = errors.New("process: a read-write bind holds set-id files of its owner")

// maxSetIDScan bounds the walk of an idmapped directory.
const maxSetIDScan = 100000

// checkNoSetID walks dir (never following symbolic links) and refuses it if
// a regular file there is set-user-ID owned by uid or set-group-ID owned by
// gid — the ids the idmapped mount hands to the sandbox.
// hasFileCaps reports whether the file at p carries file capabilities.
func hasFileCaps(p string) bool {
	_, err := unix.Lgetxattr(p, "security.capability", nil)
	return err == nil
}

func checkNoSetID(dir string, uid, gid int) error {
	seen := 0
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if seen++; seen > maxSetIDScan {
			return fmt.Errorf("%w: %s has more than %d entries to check; make it writable by uid %d instead",
				ErrSetIDInside, dir, maxSetIDScan, sandboxUID)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // vanished while walking
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if info.Mode()&os.ModeSetuid != 0 && int(st.Uid) == uid || info.Mode()&os.ModeSetgid != 0 && int(st.Gid) == gid {
			return fmt.Errorf("%w: %s", ErrSetIDInside, p)
		}
		// File capabilities grant privilege as set-id bits do, and a write
		// through a shared mapping keeps them (write(2) clears them).
		if (int(st.Uid) == uid || int(st.Gid) == gid) && hasFileCaps(p) {
			return fmt.Errorf("%w: %s has file capabilities", ErrSetIDInside, p)
		}
		return nil
	})
}
