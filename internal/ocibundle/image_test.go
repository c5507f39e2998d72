package ocibundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, target string) entry { return entry{name: name, link: target, typ: tar.TypeLink} }

func tarLayer(t *testing.T, entries []entry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	var tw *tar.Writer
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(w)
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

// layoutBuilder writes an OCI image layout at test time.
type layoutBuilder struct {
	t   *testing.T
	dir string
}

func newLayout(t *testing.T) *layoutBuilder {
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(d, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return &layoutBuilder{t: t, dir: d}
}

func (l *layoutBuilder) blob(mediaType string, data []byte) descriptor {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(l.dir, "blobs", "sha256", h), data, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return descriptor{MediaType: mediaType, Digest: "sha256:" + h, Size: int64(len(data))}
}

// image writes config, layers, manifest and index; it returns the layout
// directory.
func (l *layoutBuilder) image(env []string, layers ...[]byte) string {
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"Env": env}})
	m := map[string]any{"schemaVersion": 2, "mediaType": mediaManifest,
		"config": l.blob("application/vnd.oci.image.config.v1+json", cfg)}
	var ds []descriptor
	for _, data := range layers {
		mt := "application/vnd.oci.image.layer.v1.tar"
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			mt += "+gzip"
		}
		ds = append(ds, l.blob(mt, data))
	}
	m["layers"] = ds
	mj, _ := json.Marshal(m)
	md := l.blob(mediaManifest, mj)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []descriptor{md}})
	os.WriteFile(filepath.Join(l.dir, "index.json"), idx, 0o644)
	return l.dir
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnpackImageLayersAndWhiteouts(t *testing.T) {
	l := newLayout(t)
	lower := tarLayer(t, []entry{dir("./usr/"), dir("usr/lib"), file("usr/lib/libx.so", "x"), symlink("lib", "usr/lib"),
		file("etc/old", "old"), file("etc/keep", "keep"), dir("opq"), file("opq/a", "a"),
		hardlink("etc/keep-link", "etc/keep"), file("file-then-dir", "f"),
		{name: "usr/bin/suid", body: "s", typ: tar.TypeReg, mode: 0o4755},
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666}, {name: "fifo", typ: tar.TypeFifo, mode: 0o644}}, true)
	upper := tarLayer(t, []entry{file("etc/.wh.old", ""), file("opq/.wh..wh..opq", ""), file("opq/b", "b"),
		file("lib/libz.so", "z"), dir("file-then-dir"), file("file-then-dir/x", "x")}, false)
	layout := l.image([]string{"PATH=/usr/bin", "IMG=1"}, lower, upper)
	img, err := UnpackImage(context.Background(), layout, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := img.RootFS
	if readFile(t, filepath.Join(r, "usr/lib/libx.so")) != "x" || readFile(t, filepath.Join(r, "usr/lib/libz.so")) != "z" {
		t.Errorf("layer contents or write through a relative symlink wrong")
	}
	if _, err := os.Lstat(filepath.Join(r, "etc/old")); !os.IsNotExist(err) {
		t.Errorf("whiteout not applied: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(r, "opq/a")); !os.IsNotExist(err) || readFile(t, filepath.Join(r, "opq/b")) != "b" {
		t.Errorf("opaque directory not applied: %v", err)
	}
	a, _ := os.Stat(filepath.Join(r, "etc/keep"))
	b, _ := os.Stat(filepath.Join(r, "etc/keep-link"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link not preserved")
	}
	if fi, err := os.Stat(filepath.Join(r, "usr/bin/suid")); err != nil || fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("set-id bit kept or mode wrong: %v %v", fi.Mode(), err)
	}
	for _, skipped := range []string{"dev/null", "fifo"} {
		if _, err := os.Lstat(filepath.Join(r, skipped)); !os.IsNotExist(err) {
			t.Errorf("%s: special file created", skipped)
		}
	}
	if fi, err := os.Stat(filepath.Join(r, "file-then-dir/x")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("directory replacing a file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(r, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("/tmp mount point: %v %v", fi, err)
	}
	if strings.Join(img.Env, " ") != "PATH=/usr/bin IMG=1" || !strings.HasPrefix(img.Digest, "sha256:") {
		t.Errorf("image %+v", img)
	}
}

// TestUnpackImageRefusesEscapes: no layer can write outside the root, by
// name, symlink or hard link.
func TestUnpackImageRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("intact"), 0o644)
	cases := map[string][]entry{
		"dotdot":               {file("../../../../"+outside+"/pwned", "x")},
		"dotdot-inner":         {dir("a"), file("a/../../pwned", "x")},
		"absolute":             {file(outside+"/pwned", "x")},
		"abs-symlink-dir":      {symlink("evil", outside), file("evil/pwned", "x")},
		"rel-symlink-dir":      {dir("a"), symlink("a/up", "../../../../../../../.."+outside), file("a/up/pwned", "x")},
		"symlink-then-file":    {symlink("victim", victim), file("victim", "overwritten")},
		"hardlink-out":         {hardlink("h", "../../../../../../.."+victim)},
		"hardlink-abs":         {hardlink("h", victim)},
		"whiteout-dotdot":      {dir("a"), file("a/.wh...", "")},
		"symlink-dir-whiteout": {symlink("evil", outside), file("evil/.wh.victim", "")},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLayout(t)
			layout := l.image(nil, tarLayer(t, entries, false))
			cache := t.TempDir()
			img, err := UnpackImage(context.Background(), layout, cache)
			if name == "symlink-then-file" {
				// Replacing the symlink is fine: the file lands inside.
				if err != nil || readFile(t, filepath.Join(img.RootFS, "victim")) != "overwritten" {
					t.Fatalf("replace symlink: %v", err)
				}
			} else if err == nil {
				t.Fatalf("unpacked without error")
			}
			t.Logf("refused: %v", err)
			if readFile(t, victim) != "intact" {
				t.Fatalf("file outside the root changed")
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Fatalf("something was written outside the root: %v", ents)
			}
			if ents, _ := os.ReadDir(cache); name != "symlink-then-file" && len(ents) != 0 {
				t.Errorf("failed unpack left %v in the cache", ents)
			}
		})
	}
}

func TestUnpackImageDigestAndFormat(t *testing.T) {
	l := newLayout(t)
	layout := l.image(nil, tarLayer(t, []entry{file("a", "a")}, true))
	m, _, err := readManifest(layout)
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(m.Layers[0].Digest, "sha256:"))
	os.WriteFile(blob, tarLayer(t, []entry{file("a", "tampered")}, true), 0o644)
	if _, err := UnpackImage(context.Background(), layout, t.TempDir()); !errors.Is(err, ErrDigest) {
		t.Errorf("tampered layer: %v", err)
	}
	if _, err := UnpackImage(context.Background(), t.TempDir(), t.TempDir()); !errors.Is(err, ErrImage) {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := decompress("application/vnd.oci.image.layer.v1.tar+zstd", nil); !errors.Is(err, ErrImage) {
		t.Errorf("zstd: %v", err)
	}
	if _, err := openBlob(layout, descriptor{Digest: "sha256:../../../etc/passwd"}); !errors.Is(err, ErrImage) {
		t.Errorf("digest with a path: %v", err)
	}
}

// TestUnpackImageCacheConcurrent: concurrent first uses agree on one root
// and leave no temporary directories; later uses reuse it.
func TestUnpackImageCacheConcurrent(t *testing.T) {
	l := newLayout(t)
	layout := l.image(nil, tarLayer(t, []entry{file("a", "a")}, true))
	cache := t.TempDir()
	var wg sync.WaitGroup
	roots := make([]string, 6)
	errs := make([]error, 6)
	for i := range roots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := UnpackImage(context.Background(), layout, cache)
			errs[i] = err
			if err == nil {
				roots[i] = img.RootFS
			}
		}()
	}
	wg.Wait()
	for i := range roots {
		if errs[i] != nil || roots[i] != roots[0] {
			t.Fatalf("caller %d: %v %s (first %s)", i, errs[i], roots[i], roots[0])
		}
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(ents))
	}
	marker := filepath.Join(roots[0], "marker")
	os.WriteFile(marker, nil, 0o644)
	if img, err := UnpackImage(context.Background(), layout, cache); err != nil || img.RootFS != roots[0] {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("cached root was unpacked again")
	}
}
