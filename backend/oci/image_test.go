package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/internal/runtime"
	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// probeProgram runs inside the image: it reports what it sees.
const probeProgram = `package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

func main() {
	_, hostSh := os.Stat("/usr/bin/sh")
	rootErr := os.WriteFile("/written", []byte("x"), 0o644)
	workErr := os.WriteFile("/work/out", []byte("x"), 0o644)
	fmt.Printf("img=%s base=%s uid=%d host-sh-hidden=%v root-ro=%v work-rw=%v\n", os.Getenv("IMG"), os.Getenv("BASE"),
		os.Getuid(), os.IsNotExist(hostSh), rootErr != nil, workErr == nil)
	if len(os.Args) > 1 {
		fd, _ := strconv.Atoi(os.Args[1])
		b, err := io.ReadAll(os.NewFile(uintptr(fd), "secret"))
		fmt.Printf("fd=%s err=%v\n", b, err)
	}
}
`

// buildImage compiles probeProgram statically and writes an OCI image
// layout whose one gzip layer holds it at /bin/probe.
func buildImage(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not in PATH")
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte(probeProgram), 0o644)
	bin := filepath.Join(src, "probe")
	cmd := exec.Command(goBin, "build", "-o", bin, "main.go")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	prog, _ := os.ReadFile(bin)
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/probe", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(prog))})
	tw.Write(prog)
	tw.Close()
	zw.Close()

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	blob := func(mt string, data []byte) map[string]any {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), data, 0o644)
		return map[string]any{"mediaType": mt, "digest": "sha256:" + h, "size": len(data)}
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin", "IMG=from-image", "BASE=image"}}})
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": blob("application/vnd.oci.image.config.v1+json", cfg),
		"layers": []any{blob("application/vnd.oci.image.layer.v1.tar+gzip", layer.Bytes())}})
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2,
		"manifests": []any{blob("application/vnd.oci.image.manifest.v1+json", man)}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir
}

// TestImageRootFS runs a static binary from an OCI image layout: the
// image's root replaces the host view, read-only, with the work directory
// writable, the image's environment under the sandbox's, and secret
// descriptors delivered.
func TestImageRootFS(t *testing.T) {
	layout := buildImage(t)
	before := map[string]bool{}
	ents, _ := os.ReadDir(runtime.ImageCacheDir())
	for _, e := range ents {
		before[e.Name()] = true
	}
	defer func() { // the test's image leaves the shared cache
		ents, _ := os.ReadDir(runtime.ImageCacheDir())
		for _, e := range ents {
			if !before[e.Name()] {
				os.RemoveAll(filepath.Join(runtime.ImageCacheDir(), e.Name()))
			}
		}
	}()
	for _, k := range []string{"crun", "runc"} {
		t.Run(k, func(t *testing.T) {
			ctx := context.Background()
			if _, err := runtime.Detect(ctx, runtime.Kind(k)); err != nil {
				t.Skipf("%s: %v", k, err)
			}
			d := New(Options{Runtime: k, Image: layout})
			inst, err := d.Create(ctx, &backend.Spec{ID: "img-" + k, Policy: policy.Strict(), Env: []string{"BASE=sandbox"}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := inst.Destroy(ctx); err != nil {
					t.Error(err)
				}
			}()
			out, err := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"probe", "7"}, Files: map[int][]byte{7: []byte("s3cret")},
				Timeout: 10 * time.Second, MaxOutput: 1 << 16})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("img=from-image base=sandbox uid=%d host-sh-hidden=true", backend.SandboxUID) + " root-ro=true work-rw=true\nfd=s3cret err=<nil>\n"
			if string(out.Stdout) != want || out.ExitCode != 0 {
				t.Fatalf("stdout %q stderr %q code %d, want %q", out.Stdout, out.Stderr, out.ExitCode, want)
			}
			if out, _ := inst.Exec(ctx, &backend.ExecRequest{Argv: []string{"sh", "-c", "true"}, Timeout: 10 * time.Second, MaxOutput: 4096}); out == nil || out.ExitCode != 127 {
				t.Errorf("the image has no shell, yet: %+v", out)
			}
			if enf := inst.Enforcement(); !enf.Layers.Has(score.Filesystem | score.Limits) {
				t.Errorf("enforcement %+v", enf)
			}
		})
	}
	ents, _ = os.ReadDir(runtime.ImageCacheDir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".unpack-") {
			t.Errorf("temporary unpack directory left: %s", e.Name())
		}
	}
}
