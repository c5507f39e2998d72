package ocibundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// untar applies one layer's entries to root.
func untar(r io.Reader, root *os.Root) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: tar: %w", ErrImage, err)
		}
		name, err := cleanEntry(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the root itself keeps kavach's mode
		}
		if err := applyEntry(root, h, name, tr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// applyEntry applies one tar entry at name (validated, non-empty).
func applyEntry(root *os.Root, h *tar.Header, name string, body io.Reader) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return whiteout(root, dir, base)
	}
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := fs.FileMode(h.Mode).Perm()
	if h.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
			if err := root.RemoveAll(name); err != nil {
				return err
			}
		}
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		return finish(root, h, name, mode)
	case tar.TypeReg:
		if err := replace(root, name); err != nil {
			return err
		}
		if err := writeFile(root, name, body); err != nil {
			return err
		}
		return finish(root, h, name, mode)
	case tar.TypeSymlink:
		if err := replace(root, name); err != nil {
			return err
		}
		if err := root.Symlink(h.Linkname, name); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			return root.Lchown(name, h.Uid, h.Gid)
		}
		return nil
	case tar.TypeLink:
		target, err := cleanEntry(h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link to %q", ErrUnsafePath, h.Linkname)
		}
		if err := replace(root, name); err != nil {
			return err
		}
		return root.Link(target, name)
	}
	return nil // device nodes, FIFOs and the rest are skipped
}

// whiteout applies ".wh.NAME" (delete NAME) or the opaque marker (empty
// the directory of everything lower layers put there).
func whiteout(root *os.Root, dir, base string) error {
	if base == whiteoutOpaque {
		d, err := root.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := root.RemoveAll(path.Join(dir, n)); err != nil {
				return err
			}
		}
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("%w: whiteout %q", ErrUnsafePath, base)
	}
	return root.RemoveAll(path.Join(dir, victim))
}

// replace removes whatever a lower layer left at name (but not a
// directory that the new entry would merge into).
func replace(root *os.Root, name string) error {
	if _, err := root.Lstat(name); err != nil {
		return nil
	}
	return root.RemoveAll(name)
}

func writeFile(root *os.Root, name string, body io.Reader) error {
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// finish sets owner and mode; set-user-ID and set-group-ID bits are never
// carried over.
func finish(root *os.Root, h *tar.Header, name string, mode fs.FileMode) error {
	if os.Geteuid() == 0 {
		if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	return root.Chmod(name, mode)
}
