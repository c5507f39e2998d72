package quarantine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kavach-sandbox/kavach/gate"
)

var findings = []gate.Finding{{Scanner: "secrets", Rule: "github-pat", Severity: gate.SeverityHigh, Stream: "stdout", Offset: 4, Length: 40}}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "q"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *Store) Item {
	t.Helper()
	it, err := s.Put(context.Background(), "sb-1", findings, map[string][]byte{"stdout": []byte("out [withheld]\n"), "stderr": {0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestPutShowList(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	it := put(t, s)
	if !ValidID(it.ID) || it.Status != StatusPending || it.Size != 18 || len(it.SHA256) != 64 ||
		it.SandboxID != "sb-1" || len(it.Findings) != 1 || len(it.Streams) != 2 || it.Streams[0] != "stderr" {
		t.Fatalf("item %+v", it)
	}
	got, err := s.Show(ctx, it.ID)
	if err != nil || got.ID != it.ID || got.SHA256 != it.SHA256 || !got.Created.Equal(it.Created) {
		t.Fatalf("show %+v %v", got, err)
	}
	it2 := put(t, s)
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != it.ID || list[1].ID != it2.ID {
		t.Fatalf("list %+v %v", list, err)
	}
	if m := mode(t, s.Dir()); m != 0o700 {
		t.Errorf("store dir mode %o", m)
	}
	item := filepath.Join(s.Dir(), it.ID)
	for path, want := range map[string]os.FileMode{
		item: 0o700, filepath.Join(item, "payload"): 0o700, filepath.Join(item, "meta.json"): 0o600,
		filepath.Join(item, "payload", "0"): 0o600, filepath.Join(item, "payload", "1"): 0o600,
	} {
		if m := mode(t, path); m != want {
			t.Errorf("%s: mode %o, want %o", path, m, want)
		}
	}
	// Show is metadata only: it works without the payload.
	if err := os.RemoveAll(filepath.Join(item, "payload")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Show(ctx, it.ID); err != nil {
		t.Errorf("show without payload: %v", err)
	}
}

func TestNothingReleasedUntilApproved(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	it := put(t, s)
	var out bytes.Buffer
	if err := s.Release(ctx, it.ID, "stdout", &out); !errors.Is(err, ErrNotApproved) || out.Len() != 0 {
		t.Fatalf("release pending: %v, %d bytes", err, out.Len())
	}
	if _, err := s.Approve(ctx, it.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, it.ID); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("second approve: %v", err)
	}
	if _, err := s.Reject(ctx, it.ID); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("reject after approve: %v", err)
	}
	if err := s.Release(ctx, it.ID, "nope", &out); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown artifact: %v", err)
	}
	if err := s.Release(ctx, it.ID, "stdout", &out); err != nil || out.String() != "out [withheld]\n" {
		t.Fatalf("release: %v %q", err, out.String())
	}
	if got, _ := s.Show(ctx, it.ID); got.Status != StatusReleased || got.Decided == nil {
		t.Errorf("status after release: %+v", got)
	}
	out.Reset()
	if err := s.Release(ctx, it.ID, "stderr", &out); err != nil || !bytes.Equal(out.Bytes(), []byte{0, 1, 2}) {
		t.Errorf("second release: %v %v", err, out.Bytes())
	}
}

func TestRejectDeletesPayload(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	it := put(t, s)
	if got, err := s.Reject(ctx, it.ID); err != nil || got.Status != StatusRejected {
		t.Fatalf("reject: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), it.ID, "payload")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("payload still present: %v", err)
	}
	if _, err := s.Approve(ctx, it.ID); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("approve after reject: %v", err)
	}
	if err := s.Release(ctx, it.ID, "stdout", &bytes.Buffer{}); !errors.Is(err, ErrNotApproved) {
		t.Errorf("release after reject: %v", err)
	}
}

func TestTamperedPayloadNotReleased(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	it := put(t, s)
	if _, err := s.Approve(ctx, it.ID); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir(), it.ID, "payload", "1") // "stdout" sorts after "stderr"
	if err := os.WriteFile(p, []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Release(ctx, it.ID, "stdout", &out); err == nil || out.Len() != 0 {
		t.Errorf("tampered release: %v, %d bytes", err, out.Len())
	}
}

func TestIDsArePathSafe(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, id := range []string{"", "..", "../q", "q-../../../etc", "q-0123456789ABCDEF", "q-0123456789abcde", "q-0123456789abcdef/..", "/etc/passwd"} {
		if _, err := s.Show(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Show(%q): %v", id, err)
		}
		if _, err := s.Approve(ctx, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Approve(%q): %v", id, err)
		}
	}
	if _, err := s.Show(ctx, "q-0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestConcurrentPutAndDecide(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	const n = 16
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			it, err := s.Put(ctx, "sb", findings, map[string][]byte{"stdout": bytes.Repeat([]byte{byte(i)}, 1000)})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = it.ID
		})
	}
	wg.Wait()
	list, err := s.List(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("list: %d items, %v", len(list), err)
	}
	// Racing approvals and rejections of one item: exactly one decision wins.
	var mu sync.Mutex
	wins := 0
	for i := range 2 * n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = s.Approve(ctx, ids[0])
			} else {
				_, err = s.Reject(ctx, ids[0])
			}
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, ErrAlreadyDecided):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d decisions won, want 1", wins)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != n {
		t.Errorf("%d entries in store dir (temp dirs left?)", len(entries))
	}
}

func TestOpen(t *testing.T) {
	base := t.TempDir()
	loose := filepath.Join(base, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(loose); err != nil || mode(t, loose) != 0o700 {
		t.Errorf("loose dir: %v, mode %o", err, mode(t, loose))
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil {
		t.Error("opened a file")
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(loose, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link); err == nil {
		t.Error("opened a symlink")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := openStore(t)
	if _, err := s.Put(ctx, "sb", nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled put: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("KAVACH_STATE_DIR", "/state")
	t.Setenv("XDG_STATE_HOME", "/xdg")
	if d, _ := DefaultDir(); d != "/state/quarantine" {
		t.Errorf("KAVACH_STATE_DIR: %s", d)
	}
	t.Setenv("KAVACH_STATE_DIR", "")
	if d, _ := DefaultDir(); d != "/xdg/kavach/quarantine" {
		t.Errorf("XDG_STATE_HOME: %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultDir(); d != "/home/u/.local/state/kavach/quarantine" {
		t.Errorf("HOME: %s", d)
	}
}
