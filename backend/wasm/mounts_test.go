package wasm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// TestReadOnlyMountInsideReadWriteMountIsRefused: with /data read-write
// and its subdirectory mounted read-only at /data/sub, the module could
// open sub through the /data preopen and write there. Create refuses.
func TestReadOnlyMountInsideReadWriteMountIsRefused(t *testing.T) {
	host := t.TempDir()
	sub := filepath.Join(host, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(sub, alias); err != nil {
		t.Fatal(err)
	}
	for name, mounts := range map[string][]policy.Mount{
		"nested":                 {{Source: host, Dest: "/data", Mode: policy.ReadWrite}, {Source: sub, Dest: "/data/sub", Mode: policy.ReadOnly}},
		"elsewhere in the guest": {{Source: host, Dest: "/data", Mode: policy.ReadWrite}, {Source: sub, Dest: "/ro", Mode: policy.ReadOnly}},
		"same directory":         {{Source: sub, Dest: "/ro", Mode: policy.ReadOnly}, {Source: sub, Dest: "/rw", Mode: policy.ReadWrite}},
		"through a symlink":      {{Source: host, Dest: "/data", Mode: policy.ReadWrite}, {Source: alias, Dest: "/ro", Mode: policy.ReadOnly}},
	} {
		p := policy.Strict()
		p.Filesystem.Mounts = mounts
		inst, err := testDriver.Create(context.Background(), &backend.Spec{ID: "nested", Policy: p})
		if err == nil {
			_ = inst.Destroy(context.Background())
			t.Errorf("%s: a read-only mount inside a read-write one was accepted", name)
			continue
		}
		if !errors.Is(err, ErrNestedMount) || !strings.Contains(err.Error(), mounts[0].Source) || !strings.Contains(err.Error(), mounts[1].Source) {
			t.Errorf("%s: %v; want ErrNestedMount naming both mounts", name, err)
		}
	}
}

// TestReadWriteMountInsideReadOnlyMount is the safe nesting: the module
// writes to sub through /data/sub, and nowhere else through /data.
func TestReadWriteMountInsideReadOnlyMount(t *testing.T) {
	host := t.TempDir()
	sub := filepath.Join(host, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{
		{Source: host, Dest: "/data", Mode: policy.ReadOnly},
		{Source: sub, Dest: "/data/sub", Mode: policy.ReadWrite},
	}
	inst := newSandbox(t, p)
	wantExit(t, run(t, inst, req("write", "/data/sub/f", "ok")), 0)
	if out := run(t, inst, req("write", "/data/f", "no")); out.ExitCode != 1 {
		t.Errorf("write to the read-only /data: exit %d", out.ExitCode)
	}
	if _, err := os.Stat(filepath.Join(host, "f")); err == nil {
		t.Error("a file was created in the read-only mount")
	}
}

// TestReadFileRacesDestroy runs ReadFile while Destroy releases the
// sandbox (run it with -race): every read either returns the file or
// ErrDestroyed, never a half-released directory.
func TestReadFileRacesDestroy(t *testing.T) {
	for range 20 {
		inst, err := testDriver.Create(context.Background(), &backend.Spec{ID: "readfile", Policy: policy.Strict()})
		if err != nil {
			t.Fatal(err)
		}
		w := inst.(*Instance)
		if err := os.WriteFile(filepath.Join(w.baseDir, "work", "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					b, err := w.ReadFile(context.Background(), "/work/f", 100)
					switch {
					case errors.Is(err, ErrDestroyed):
						return
					case err != nil || string(b) != "data":
						errs <- errors.New("read " + string(b) + ": " + errString(err))
						return
					}
				}
			}()
		}
		if err := inst.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
