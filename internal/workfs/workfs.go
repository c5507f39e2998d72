// Package workfs bounds a sandbox's work directory: a tmpfs of its own,
// mounted on the host directory that a backend binds at /work, so that a
// payload filling /work meets ENOSPC at the policy's work_size instead of
// filling the host file system that holds kavach's state. Mounting needs
// root in the initial user namespace; rootless, the work directory stays
// a plain directory.
package workfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported reports whether this process can give work directories a file
// system of their own: it runs as root with CAP_SYS_ADMIN and a tmpfs
// mount works (it does not for root in a container without the
// capability, in a user namespace that does not own the mount namespace,
// or under a security module that denies mounts: those keep plain
// directories). The first call tries a mount once.
var Supported = sync.OnceValue(func() bool {
	if os.Geteuid() != 0 {
		return false
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil || data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		return false
	}
	dir, err := os.MkdirTemp("", "kavach-workfs-probe-")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4096,nr_inodes=16") != nil {
		return false
	}
	return unix.Unmount(dir, unix.MNT_DETACH) == nil
})

// bytesPerInode is the file system size per inode that Mount allows: a
// tmpfs otherwise allows an inode for every two pages of the machine's
// memory, and empty files, directories, hard links and extended
// attributes (which count against the inodes' space) take no room within
// size, so a payload could pin gigabytes of kernel memory in a small file
// system.
const bytesPerInode = 8 << 10

// Mount mounts on dir a tmpfs of size bytes and one inode per 8 KiB of it
// (at least 1024), owned by uid:gid with mode perm. It is mounted nosuid
// and nodev: what the payload leaves there can gain no privilege, on the
// host or in the sandbox.
func Mount(dir string, size int64, uid, gid int, perm os.FileMode) error {
	if size <= 0 {
		return fmt.Errorf("workfs: size %d is not positive", size)
	}
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%04o,uid=%d,gid=%d", size, max(size/bytesPerInode, 1024), perm.Perm(), uid, gid)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("workfs: mount a %d-byte tmpfs on %s: %w", size, dir, err)
	}
	return nil
}

// Unmount detaches the file system mounted on dir, without following a
// symbolic link there. A dir with nothing mounted on it, or none at all,
// is not an error.
func Unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("workfs: unmount %s: %w", dir, err)
}

// RemoveAll unmounts the directories inside dir given as mounts, then
// removes dir. It unmounts only as root (who alone mounts them) and only
// when dir is a directory of this process's user, not a symbolic link: a
// stale directory found in a shared place such as /tmp could be another
// user's, pointing at a file system kavach must not touch.
func RemoveAll(dir string, mounts ...string) error {
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && ownedByMe(fi) && Supported() {
		for _, m := range mounts {
			if err := Unmount(m); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(dir)
}

func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// MountedAt reports whether a file system is mounted at dir in this
// process's mount namespace (dir as /proc/self/mountinfo spells it:
// absolute and clean, with no spaces to escape).
func MountedAt(dir string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("workfs: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true, nil
		}
	}
	return false, nil
}
