package ocibundle

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// systemDirs are the host's top-level entries that make up the system view.
// On merged-/usr hosts most are symlinks into /usr and are recreated as the
// same symlinks; real directories are bind-mounted read-only.
var systemDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// etcBinds are host /etc entries bound read-only into the generated /etc:
// the dynamic loader's configuration, TLS certificates and Debian's
// alternatives symlinks (many commands in /usr/bin point through them).
var etcBinds = []string{"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "alternatives"}

// roBind is the option set of a read-only bind mount.
var roBind = []string{"rbind", "ro", "nosuid", "nodev"}

// buildRootFS creates the root directory of the host view and returns the
// bind mounts that fill it.
func buildRootFS(root string, p *policy.Policy) ([]specs.Mount, error) {
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("ocibundle: create rootfs: %w", err)
	}
	for _, d := range []string{"proc", "dev", "tmp", "etc", strings.TrimPrefix(policy.WorkDir, "/")} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("ocibundle: rootfs: %w", err)
		}
	}
	// runc gives a tmpfs the mode of its mount point, whatever the options.
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return nil, fmt.Errorf("ocibundle: rootfs: %w", err)
	}
	var mounts []specs.Mount
	for _, d := range systemDirs {
		m, err := systemEntry(root, d)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m...)
	}
	etc, err := buildEtc(filepath.Join(root, "etc"), p)
	if err != nil {
		return nil, err
	}
	return append(mounts, etc...), nil
}

// systemEntry recreates one host top-level entry in root: a symlink as the
// same symlink, a directory as a mount point with a read-only bind.
func systemEntry(root, name string) ([]specs.Mount, error) {
	host := "/" + name
	fi, err := os.Lstat(host)
	switch {
	case os.IsNotExist(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("ocibundle: host %s: %w", host, err)
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return nil, fmt.Errorf("ocibundle: host %s: %w", host, err)
		}
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			return nil, fmt.Errorf("ocibundle: rootfs: %w", err)
		}
		return nil, nil
	case fi.IsDir():
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			return nil, fmt.Errorf("ocibundle: rootfs: %w", err)
		}
		return []specs.Mount{{Destination: host, Type: "bind", Source: host, Options: roBind}}, nil
	}
	return nil, nil
}

// buildEtc writes the generated /etc and returns the binds of the host
// entries it borrows.
func buildEtc(etc string, p *policy.Policy) ([]specs.Mount, error) {
	host := hostname(p)
	files := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nsandbox:x:%d:%d:kavach sandbox:%s:/bin/sh\n",
			UID, GID, policy.WorkDir),
		"group":         fmt.Sprintf("root:x:0:\nsandbox:x:%d:\n", GID),
		"hosts":         "127.0.0.1\tlocalhost " + host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname":      host + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
		"resolv.conf":   resolvConf(p),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("ocibundle: etc: %w", err)
		}
	}
	if err := copySymlink("/etc/localtime", filepath.Join(etc, "localtime")); err != nil {
		return nil, err
	}
	var mounts []specs.Mount
	for _, name := range etcBinds {
		src := "/etc/" + name
		fi, err := os.Stat(src)
		if err != nil {
			continue // optional: absent on this host
		}
		if err := makeMountPoint(filepath.Join(etc, name), fi.IsDir()); err != nil {
			return nil, err
		}
		mounts = append(mounts, specs.Mount{Destination: src, Type: "bind", Source: src, Options: roBind})
	}
	return mounts, nil
}

// resolvConf is the host's resolver configuration when the sandbox has the
// host's network, and an inert one otherwise.
func resolvConf(p *policy.Policy) string {
	if p.Network.Mode == policy.NetworkOn {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			return string(b)
		}
	}
	return "# kavach: no network\n"
}

func hostname(p *policy.Policy) string {
	if p.Hostname != "" {
		return p.Hostname
	}
	return policy.DefaultHostname
}

// copySymlink recreates the symlink src at dst; a missing or non-symlink
// src is skipped.
func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return nil
	}
	if err := os.Symlink(target, dst); err != nil {
		return fmt.Errorf("ocibundle: etc: %w", err)
	}
	return nil
}

// makeMountPoint creates an empty directory or file for a bind mount.
func makeMountPoint(p string, dir bool) error {
	if dir {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("ocibundle: mount point %s: %w", p, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("ocibundle: mount point %s: %w", p, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("ocibundle: mount point %s: %w", p, err)
	}
	return f.Close()
}

// statSource stats a mount source without following a symbolic link in
// any component of its path (backend.ErrSymlinkSource).
func statSource(p string) (os.FileInfo, error) {
	fd, err := backend.OpenMountSource(p)
	if err != nil {
		return nil, fmt.Errorf("ocibundle: %w", err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return f.Stat()
}

// mountPoints creates the mount points of the policy's mounts where kavach
// owns the parent: in the work directory and at new top-level paths of the
// generated root. Elsewhere (under /tmp, say) the runtime creates them.
func mountPoints(b *Bundle, mounts []policy.Mount) error {
	for _, m := range mounts {
		fi, err := statSource(m.Source)
		if err != nil {
			return err
		}
		dest := path.Clean(m.Dest)
		var host string
		switch {
		case dest == policy.WorkDir:
			continue
		case strings.HasPrefix(dest, policy.WorkDir+"/"):
			host = filepath.Join(b.WorkDir, strings.TrimPrefix(dest, policy.WorkDir))
		case strings.Count(dest, "/") == 1 && b.RootFS == filepath.Join(b.Dir, "rootfs"):
			host = filepath.Join(b.RootFS, dest)
			if _, err := os.Lstat(host); err == nil {
				continue
			}
		default:
			continue
		}
		if err := makeMountPoint(host, fi.IsDir()); err != nil {
			return err
		}
	}
	return nil
}
