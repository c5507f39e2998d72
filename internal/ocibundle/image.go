package ocibundle

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// OCI image layouts. A caller-given layout directory (index.json →
// manifest → config and layers, every blob checked against its digest) is
// unpacked once into a cache directory named after the manifest digest and
// then used, read-only, as a container's root. Unpacking goes through an
// os.Root, so no entry, symlink or hard link reaches outside the root; tar
// names that are absolute or climb with ".." are refused outright; device
// nodes and FIFOs are skipped; set-id bits are dropped. Layer whiteouts
// (".wh.NAME") and opaque directories (".wh..wh..opq") are applied.

// Media types kavach reads.
const (
	mediaIndex       = "application/vnd.oci.image.index.v1+json"
	mediaManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	whiteoutPrefix   = ".wh."
	whiteoutOpaque   = ".wh..wh..opq"
	maxMetadataBytes = 4 << 20
)

// imageMountPoints are created in every unpacked root so that the runtime
// never has to create them in the shared cache.
var imageMountPoints = []string{"proc", "dev", "tmp", "etc", "work", ".kavach"}

// Sentinel errors of image handling, testable with errors.Is.
var (
	// ErrImage reports a layout that is not a usable OCI image.
	ErrImage = errors.New("ocibundle: bad OCI image layout")
	// ErrUnsafePath reports a layer entry that would land outside the root.
	ErrUnsafePath = errors.New("ocibundle: unsafe path in image layer")
	// ErrDigest reports a blob whose content does not match its digest.
	ErrDigest = errors.New("ocibundle: blob digest mismatch")
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// descriptor is the part of an OCI descriptor kavach uses.
type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"` // set when the blob is a nested index
}

type imageConfig struct {
	Config struct {
		Env []string `json:"Env"`
	} `json:"config"`
}

// Image is an unpacked image.
type Image struct {
	// Digest is the manifest's digest, the cache key.
	Digest string
	// RootFS is the unpacked root directory (shared: never write to it).
	RootFS string
	// Env is the image configuration's environment.
	Env []string
}

// UnpackImage returns the unpacked root of the OCI image layout at layout,
// unpacking it into cacheDir on first use. Concurrent callers for the same
// image are safe: each unpacks into a private directory and the first
// atomic rename into place wins.
func UnpackImage(ctx context.Context, layout, cacheDir string) (*Image, error) {
	m, dgst, err := readManifest(layout)
	if err != nil {
		return nil, err
	}
	var cfg imageConfig
	if err := readJSONBlob(layout, m.Config, &cfg); err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrImage, err)
	}
	img := &Image{Digest: dgst, Env: cfg.Config.Env,
		RootFS: filepath.Join(cacheDir, strings.Replace(dgst, ":", "-", 1), "rootfs")}
	if _, err := os.Stat(img.RootFS); err == nil {
		return img, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ocibundle: image cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".unpack-")
	if err != nil {
		return nil, fmt.Errorf("ocibundle: image cache: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after a successful rename
	if err := unpackLayers(ctx, layout, m.Layers, filepath.Join(tmp, "rootfs")); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, fmt.Errorf("ocibundle: image cache: %w", err)
	}
	err = os.Rename(tmp, filepath.Dir(img.RootFS))
	if err != nil && !errors.Is(err, os.ErrExist) && !isNotEmpty(err) {
		return nil, fmt.Errorf("ocibundle: image cache: %w", err)
	}
	return img, nil // err != nil: another caller unpacked it first
}

// isNotEmpty reports rename's ENOTEMPTY (the target directory exists).
func isNotEmpty(err error) bool {
	var le *os.LinkError
	return errors.As(err, &le) && strings.Contains(le.Err.Error(), "directory not empty")
}

// readManifest follows index.json (and one nested index) to an image
// manifest, preferring linux/amd64 where several are listed.
func readManifest(layout string) (*manifest, string, error) {
	var idx index
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrImage, err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, "", fmt.Errorf("%w: index.json: %w", ErrImage, err)
	}
	for depth := 0; depth < 2; depth++ {
		d, err := pickManifest(idx.Manifests)
		if err != nil {
			return nil, "", err
		}
		var m manifest
		if err := readJSONBlob(layout, d, &m); err != nil {
			return nil, "", fmt.Errorf("%w: manifest: %w", ErrImage, err)
		}
		if d.MediaType != mediaIndex && d.MediaType != mediaDockerList && len(m.Manifests) == 0 {
			return &m, d.Digest, nil
		}
		idx.Manifests = m.Manifests
	}
	return nil, "", fmt.Errorf("%w: indexes nested too deeply", ErrImage)
}

func pickManifest(ds []descriptor) (descriptor, error) {
	if len(ds) == 0 {
		return descriptor{}, fmt.Errorf("%w: no manifest", ErrImage)
	}
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
			return d, nil
		}
	}
	return ds[0], nil
}

// openBlob opens a blob; the reader fails with ErrDigest at EOF when the
// content does not match the digest.
func openBlob(layout string, d descriptor) (io.ReadCloser, error) {
	if !digestRE.MatchString(d.Digest) {
		return nil, fmt.Errorf("%w: unsupported digest %q", ErrImage, d.Digest)
	}
	f, err := os.Open(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:")))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImage, err)
	}
	return &verifier{f: f, h: sha256.New(), want: d.Digest}, nil
}

type verifier struct {
	f    *os.File
	h    hash.Hash
	want string
}

func (v *verifier) Read(b []byte) (int, error) {
	n, err := v.f.Read(b)
	v.h.Write(b[:n])
	if err == io.EOF && "sha256:"+hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return n, fmt.Errorf("%w: %s", ErrDigest, v.want)
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

func readJSONBlob(layout string, d descriptor, v any) error {
	r, err := openBlob(layout, d)
	if err != nil {
		return err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxMetadataBytes))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// unpackLayers applies the layers in order to a new root at dir, then
// makes the mount points the bundle needs.
func unpackLayers(ctx context.Context, layout string, layers []descriptor, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("ocibundle: image root: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("ocibundle: image root: %w", err)
	}
	defer root.Close()
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := applyLayer(layout, l, root); err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	for _, mp := range imageMountPoints {
		if err := root.MkdirAll(mp, 0o755); err != nil {
			return fmt.Errorf("ocibundle: image mount point /%s: %w", mp, err)
		}
	}
	return root.Chmod("tmp", 0o777|os.ModeSticky)
}

// applyLayer unpacks one layer blob (tar, gzip-compressed or not).
func applyLayer(layout string, d descriptor, root *os.Root) error {
	blob, err := openBlob(layout, d)
	if err != nil {
		return err
	}
	defer blob.Close()
	r, err := decompress(d.MediaType, blob)
	if err != nil {
		return err
	}
	if err := untar(r, root); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r) // trailing padding; completes the digest check
	return err
}

// decompress picks the decompressor from the media type, or from the
// content when the type does not say.
func decompress(mediaType string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(mediaType, "+zstd"):
		return nil, fmt.Errorf("%w: zstd layers are not supported", ErrImage)
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".gzip"):
		return gzip.NewReader(r)
	}
	return r, nil
}

// cleanEntry validates a tar name: relative, no "..", normalised. "" is
// the root itself.
func cleanEntry(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q climbs out", ErrUnsafePath, name)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}
