package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/backend"
)

// systemDirs are the host directories the sandbox sees, read-only. On
// merged-/usr systems most are symlinks, which are recreated as such.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"}

// etcBinds are host files and directories under /etc that ordinary
// programs need (dynamic linker, TLS roots, Debian alternatives).
var etcBinds = []string{
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates",
	"/etc/alternatives", "/etc/localtime", "/etc/protocols", "/etc/services", "/etc/mime.types",
}

// devNodes are bound from the host into the sandbox's /dev.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

const (
	bindFlags = unix.MS_BIND | unix.MS_REC
	safeFlags = unix.MS_NOSUID | unix.MS_NODEV
)

// buildRoot assembles the sandbox's file system on a fresh tmpfs and
// pivots into it. Nothing of the host is visible afterwards but what is
// bound here.
func buildRoot(c *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	r := c.Root
	if err := unix.Mount("tmpfs", r, "tmpfs", safeFlags, "mode=0755,size=16m"); err != nil {
		return fmt.Errorf("root tmpfs: %w", err)
	}
	steps := []func(string, *initConfig) error{bindSystem, makeEtc, makeDev, makeTmp, bindWork, bindPolicyMounts}
	for _, step := range steps {
		if err := step(r, c); err != nil {
			return err
		}
	}
	if err := pivot(r); err != nil {
		return err
	}
	if c.ReadOnlyRoot {
		if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|safeFlags, ""); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	return nil
}

func bindSystem(r string, _ *initConfig) error {
	for _, d := range systemDirs {
		st, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, r+d); err != nil {
				return err
			}
			continue
		}
		if err := bindRO(d, r+d); err != nil {
			return err
		}
	}
	return nil
}

func makeEtc(r string, c *initConfig) error {
	etc := r + "/etc"
	if err := os.Mkdir(etc, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"passwd":        fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:%d:%d:kavach sandbox:/work:/bin/sh\n", sandboxUID, sandboxGID),
		"group":         fmt.Sprintf("root:x:0:\nsandbox:x:%d:\n", sandboxGID),
		"hosts":         "127.0.0.1\tlocalhost " + c.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname":      c.Hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
		"resolv.conf":   "",
	}
	if c.ResolvConf {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			files["resolv.conf"] = string(b)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(etc+"/"+name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, src := range etcBinds {
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := bindRO(src, r+src); err != nil {
			return err
		}
	}
	if c.CABundle != "" {
		return bindRO(c.CABundle, r+caBundlePath)
	}
	return nil
}

func makeDev(r string, _ *initConfig) error {
	dev := r + "/dev"
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("/dev tmpfs: %w", err)
	}
	for _, n := range devNodes {
		if err := bindFile("/dev/"+n, dev+"/"+n, unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore",
	} {
		if err := os.Symlink(target, dev+"/"+name); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dev+"/shm", 0o1777); err != nil {
		return err
	}
	return unix.Mount("tmpfs", dev+"/shm", "tmpfs", safeFlags|unix.MS_NOEXEC, "mode=1777,size=64m")
}

func makeTmp(r string, c *initConfig) error {
	if err := os.Mkdir(r+"/tmp", 0o1777); err != nil {
		return err
	}
	return unix.Mount("tmpfs", r+"/tmp", "tmpfs", safeFlags, fmt.Sprintf("mode=1777,size=%d", c.TmpSize))
}

func bindWork(r string, c *initConfig) error {
	if err := os.MkdirAll(r+"/work", 0o755); err != nil {
		return err
	}
	return bind(c.WorkDir, r+"/work", true)
}

// bindPolicyMounts binds the caller's paths. Each source is opened once,
// refusing any symbolic link on the way (a sandbox that could write a
// parent directory might have planted one to redirect a later bind), and
// the bind is made from that descriptor.
func bindPolicyMounts(r string, c *initConfig) error {
	for _, m := range c.Mounts {
		fd, err := backend.OpenMountSource(m.Source)
		if err != nil {
			return err
		}
		err = bindPolicyMount(fd, m, r, c)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// bindPolicyMount binds the source open as fd at m.Dest beneath r. The
// mount point is made and reached without following any symbolic link
// (mountPointAt), and the bind is attached to that descriptor, not to a
// path the kernel would resolve again.
func bindPolicyMount(fd int, m bindMount, r string, c *initConfig) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("bind %s: %w", m.Source, err)
	}
	mp, err := mountPointAt(r, m.Dest, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer unix.Close(mp)
	if m.IDMap >= 0 && m.IDMap < len(c.usernsFDs) {
		return bindIDMapped(fd, m.Source, mp, c.usernsFDs[m.IDMap])
	}
	if !c.Rootless {
		return bindDetached(fd, m, mp)
	}
	if err := unix.Mount(fdPath(fd), fdPath(mp), "", bindFlags, ""); err != nil {
		return fmt.Errorf("bind %s: %w", m.Source, err)
	}
	// mp is the covered mount point: reach the new bind's root the same
	// way to set its attributes.
	top, err := openBeneath(r, m.Dest)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	flags := uintptr(safeFlags)
	if !m.RW {
		flags |= unix.MS_RDONLY
	}
	return remount(fdPath(top), flags)
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// bindDetached binds the source open as fd on the mount point open as mp
// with its attributes (read-only, nosuid, nodev) set before the bind is
// attached: a copy of the source's mount tree is made detached
// (open_tree), given its attributes, then moved onto the mount point, so
// the bind is never visible writable, and never looked up again by path.
func bindDetached(fd int, m bindMount, mp int) error {
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("bind %s: open_tree: %w", m.Source, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if !m.RW {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("bind %s: mount attributes: %w", m.Source, err)
	}
	if err := unix.MoveMount(tree, "", mp, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s: move_mount: %w", m.Source, err)
	}
	return nil
}

// ErrMountPointLink refuses a mount destination whose path beneath the
// sandbox's root goes through a symbolic link. Such a path can only go
// through the work directory or a read-write bind, which the payload
// writes, so the link would be the payload's, pointing the bind — and the
// directories and files made for it, as root — at the host.
var ErrMountPointLink = errors.New("process: a mount destination goes through a symbolic link")

// mountPointAt makes the mount point for dest beneath r — a directory, or
// an empty file when the source is not one — creating what is missing, and
// returns an O_PATH descriptor of it. Every component is created and
// opened relative to its parent's descriptor, never following a symbolic
// link, so nothing is made or mounted outside r whatever the payload left
// in the work directory.
func mountPointAt(r, dest string, dir bool) (int, error) {
	cur, err := unix.Open(r, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("mount point %s: %w", dest, err)
	}
	parts := strings.Split(strings.Trim(filepath.Clean(dest), "/"), "/")
	for i, name := range parts {
		last := i == len(parts)-1
		wantDir := !last || dir
		if err := makeEntry(cur, name, wantDir); err != nil {
			unix.Close(cur)
			if errors.Is(err, unix.EOVERFLOW) {
				// The kernel refuses to create files as root in an
				// idmapped mount, where root has no id.
				return -1, fmt.Errorf("mount point %s: it must already exist inside the read-write bind above it (an idmapped mount, where kavach cannot create it): %w", dest, err)
			}
			return -1, fmt.Errorf("mount point %s: %w", dest, err)
		}
		flags := uint64(unix.O_PATH | unix.O_CLOEXEC) // RESOLVE_NO_SYMLINKS refuses a final link too
		if wantDir {
			flags |= unix.O_DIRECTORY
		}
		next, err := unix.Openat2(cur, name, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		unix.Close(cur)
		if errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("%w: %s", ErrMountPointLink, dest)
		}
		if err != nil {
			return -1, fmt.Errorf("mount point %s: %w", dest, err)
		}
		cur = next
	}
	return cur, nil
}

// makeEntry creates name in the directory dfd, as a directory or an empty
// file; an entry that exists already (maybe in a read-only bind) is left
// for the caller to open, or refuse.
func makeEntry(dfd int, name string, dir bool) error {
	var err error
	if dir {
		err = unix.Mkdirat(dfd, name, 0o755)
	} else {
		var fd int
		if fd, err = unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644); err == nil {
			unix.Close(fd)
		}
	}
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// openBeneath opens dest beneath r as an O_PATH descriptor, following no
// symbolic link; a mount on dest is crossed into, as any lookup does.
func openBeneath(r, dest string) (int, error) {
	root, err := unix.Open(r, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, strings.TrimPrefix(filepath.Clean(dest), "/"), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if errors.Is(err, unix.ELOOP) {
		return -1, fmt.Errorf("%w: %s", ErrMountPointLink, dest)
	}
	if err != nil {
		return -1, fmt.Errorf("mount point %s: %w", dest, err)
	}
	return fd, nil
}

// mountPoint creates dst as a directory or file, like src.
func mountPoint(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if st.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	return touch(dst)
}

// bind binds a host file or directory at dst (created as needed), with
// nosuid and nodev, read-only unless rw.
func bind(src, dst string, rw bool) error {
	if err := mountPoint(src, dst); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", bindFlags, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	flags := uintptr(safeFlags)
	if !rw {
		flags |= unix.MS_RDONLY
	}
	return remount(dst, flags)
}

func bindRO(src, dst string) error { return bind(src, dst, false) }

func bindFile(src, dst string, flags uintptr) error {
	if err := touch(dst); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return remount(dst, flags)
}

// remount applies the flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC) to
// a bind mount and to every mount beneath it: a plain MS_REMOUNT would
// change only the top one and leave submounts of the source writable. Only
// attributes are added, none cleared, so the flags the kernel locks on
// mounts from a more privileged namespace are kept.
func remount(dst string, flags uintptr) error {
	var set uint64
	for _, f := range []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	} {
		if flags&f.ms != 0 {
			set |= f.attr
		}
	}
	attr := &unix.MountAttr{Attr_set: set}
	if err := unix.MountSetattr(unix.AT_FDCWD, dst, unix.AT_RECURSIVE, attr); err != nil {
		return fmt.Errorf("mount attributes of %s: %w", dst, err)
	}
	return nil
}

// touch creates an empty file to mount over, unless p exists already
// (possibly inside a read-only bind).
func touch(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// pivot makes r the root, mounts a fresh /proc for the new pid namespace
// (before the old root goes: the kernel wants a visible proc to allow it)
// and detaches the old root.
func pivot(r string) error {
	old := r + "/.oldroot"
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(r+"/proc", 0o555); err != nil {
		return err
	}
	if err := unix.PivotRoot(r, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", safeFlags|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return os.Remove("/.oldroot")
}
