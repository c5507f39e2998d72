package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// exportTarget is where an exported file goes on the host: a directory
// resolved before the sandbox ran, and a file name in it.
type exportTarget struct {
	src, dir, name string
}

// parseExports resolves every --export SANDBOX_PATH[:HOST_PATH] before the
// sandbox runs: symlinks in the destination's directory are the caller's
// then, and any that appears later — the payload may write to that
// directory through a --rw bind — is refused when the file is written.
func parseExports(specs []string) ([]exportTarget, error) {
	out := make([]exportTarget, 0, len(specs))
	for _, spec := range specs {
		src, dest, ok := strings.Cut(spec, ":")
		if !ok || dest == "" {
			dest = filepath.Base(src)
		}
		abs, err := filepath.Abs(dest)
		if err != nil {
			return nil, fmt.Errorf("--export %s: %w", spec, err)
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
		if err != nil {
			return nil, fmt.Errorf("--export %s: destination directory: %w", spec, err)
		}
		out = append(out, exportTarget{src: src, dir: dir, name: filepath.Base(abs)})
	}
	return out, nil
}

// write puts data at the target as a new regular file, mode 0600,
// replacing whatever is there without writing through it: the directory is
// opened without following any symlink, the data goes to a fresh temporary
// file in it, and a rename moves that over the name — so a symlink, FIFO or
// hard link the payload planted at the destination is replaced, never
// followed or written to.
func (t exportTarget) write(data []byte) error {
	dfd, err := unix.Openat2(unix.AT_FDCWD, t.dir, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return fmt.Errorf("open %s without following symlinks: %w", t.dir, err)
	}
	defer unix.Close(dfd)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + t.name + ".kavach-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create in %s: %w", t.dir, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(t.dir, tmp))
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, t.name)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", filepath.Join(t.dir, t.name), err)
	}
	return nil
}
