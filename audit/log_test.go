package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func verifyPath(t *testing.T, path string) VerifyResult {
	t.Helper()
	res, err := VerifyFile(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %#o, want 0600", fi.Mode().Perm())
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a"), nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("nil key: %v", err)
	}
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o666)
	if _, err := Open(loose, testKey); !errors.Is(err, ErrFileMode) {
		t.Fatalf("world-writable file: %v", err)
	}
	if _, err := Open(dir, testKey); err == nil {
		t.Fatal("directory accepted as audit file")
	}
}

func TestAppendEntries(t *testing.T) {
	l, path := openTemp(t)
	ctx := context.Background()
	start := time.Now()
	e1, err := l.Append(ctx, "sandbox.created", "sb-1", map[string]string{"backend": "process"})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := l.Append(ctx, "sandbox.destroyed", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Serial != 1 || e2.Serial != 2 || e1.Prev != zeroPrev || e2.Prev != e1.HMAC {
		t.Fatalf("chain links wrong: %+v %+v", e1, e2)
	}
	if string(e1.Payload) != `{"backend":"process"}` || e2.Payload != nil {
		t.Fatalf("payloads: %s / %s", e1.Payload, e2.Payload)
	}
	if e1.Time.Before(start.Add(-time.Second)) || e1.Time.Location() != time.UTC {
		t.Fatalf("time %v", e1.Time)
	}
	if serial, head := l.Head(); serial != 2 || head != e2.HMAC {
		t.Fatalf("Head = %d %s", serial, head)
	}
	data, _ := os.ReadFile(path)
	re := regexp.MustCompile(`^\{"serial":1,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z","type":"sandbox.created","sandbox_id":"sb-1","payload":\{"backend":"process"\},"prev":"0{64}","hmac":"[0-9a-f]{64}"\}\n`)
	if !re.Match(data) {
		t.Fatalf("unexpected line format:\n%s", data)
	}
	if !strings.Contains(string(data), `"serial":2,`) || strings.Contains(string(data), `"sandbox_id":""`) {
		t.Fatalf("second entry:\n%s", data)
	}
	var parsed Entry
	if err := json.Unmarshal(bytes.SplitN(data, []byte("\n"), 2)[0], &parsed); err != nil || !parsed.Time.Equal(e1.Time) || parsed.HMAC != e1.HMAC {
		t.Fatalf("line does not decode into Entry: %v %+v", err, parsed)
	}
	if res := verifyPath(t, path); !res.OK || res.Entries != 2 {
		t.Fatalf("verify: %+v", res)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	l, path := openTemp(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		typ, id string
		payload any
		err     error
	}{
		{"empty type", "", "", nil, ErrInvalidEntry},
		{"control char in type", "a\nb", "", nil, ErrInvalidEntry},
		{"invalid utf8 id", "t", "\xff", nil, ErrInvalidEntry},
		{"payload not object", "t", "", []int{1}, ErrInvalidEntry},
		{"payload string", "t", "", "s", ErrInvalidEntry},
		{"payload unmarshalable", "t", "", map[string]any{"f": func() {}}, ErrInvalidEntry},
		{"payload too large", "t", "", map[string]string{"x": strings.Repeat("a", MaxEntrySize)}, ErrTooLarge},
	}
	for _, tc := range cases {
		if _, err := l.Append(ctx, tc.typ, tc.id, tc.payload); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cancelled, "t", "", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	if res := verifyPath(t, path); !res.OK || res.Entries != 0 {
		t.Fatalf("rejected appends left entries: %+v", res)
	}
}

func TestAppendUnusualText(t *testing.T) {
	l, path := openTemp(t)
	payload := map[string]any{
		"html": "<script>&</script>", "sep": "a\u2028b", "emoji": "✓🙂", "nul": "a\x00b",
		"raw": json.RawMessage(`{ "spaced" : [1, 2.50, -0e3] }`), "big": 1e300,
	}
	if _, err := l.Append(context.Background(), "type<&>✓", "id\u2029", payload); err != nil {
		t.Fatal(err)
	}
	if res := verifyPath(t, path); !res.OK {
		t.Fatalf("verify: %+v", res)
	}
}

func TestCloseThenAppend(t *testing.T) {
	l, _ := openTemp(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), "t", "", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestReopenResumesChain(t *testing.T) {
	path := writeChain(t, 3)
	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(context.Background(), "t", "", nil)
	l.Close()
	if err != nil || e.Serial != 4 {
		t.Fatalf("resumed entry %+v, %v", e, err)
	}
	if res := verifyPath(t, path); !res.OK || res.Entries != 4 {
		t.Fatalf("verify: %+v", res)
	}
}

func TestOpenRejectsWrongKeyAndTamperedTail(t *testing.T) {
	path := writeChain(t, 3)
	if _, err := Open(path, []byte("wrong key")); !errors.Is(err, ErrTampered) {
		t.Fatalf("wrong key: %v", err)
	}
	lines := readLines(t, path)
	lines[2] = bytes.Replace(lines[2], []byte("echo hi"), []byte("echo HI"), 1)
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, testKey); !errors.Is(err, ErrTampered) {
		t.Fatalf("tampered tail: %v", err)
	}
}

// TestOpenRepairsTornTail simulates a crash in the middle of a write.
func TestOpenRepairsTornTail(t *testing.T) {
	for _, keep := range []int{0, 1, 3} {
		path := writeChain(t, keep)
		intact, _ := os.ReadFile(path)
		torn := []byte(`{"serial":9,"time":"2026-01-01T00:00`)
		if err := os.WriteFile(path, append(bytes.Clone(intact), torn...), 0o600); err != nil {
			t.Fatal(err)
		}
		if res := verifyPath(t, path); res.OK || res.FirstBadSerial != uint64(keep+1) {
			t.Fatalf("torn file must fail verification at %d: %+v", keep+1, res)
		}
		l, err := Open(path, testKey)
		if err != nil {
			t.Fatal(err)
		}
		want := []Repair{{Offset: int64(len(intact)), Dropped: int64(len(torn))}}
		if got := l.Repairs(); len(got) != 1 || got[0] != want[0] {
			t.Fatalf("Repairs = %+v, want %+v", got, want)
		}
		e, err := l.Append(context.Background(), "after", "", nil)
		l.Close()
		if err != nil || e.Serial != uint64(keep+2) {
			t.Fatalf("append after repair: %+v %v", e, err)
		}
		data, _ := os.ReadFile(path)
		if !bytes.HasPrefix(data, intact) || bytes.Contains(data, torn) {
			t.Fatalf("repair changed earlier entries or kept the torn bytes")
		}
		lines := readLines(t, path)
		if !bytes.Contains(lines[keep], []byte(`"type":"audit.repair"`)) ||
			!bytes.Contains(lines[keep], []byte(fmt.Sprintf(`"dropped_bytes":%d`, len(torn)))) {
			t.Fatalf("repair not recorded: %s", lines[keep])
		}
		if res := verifyPath(t, path); !res.OK || res.Entries != keep+2 {
			t.Fatalf("verify after repair: %+v", res)
		}
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	// Two Logs on one file behave like two processes: separate open file
	// descriptions contending for the flock.
	var logs []*Log
	for i := 0; i < 2; i++ {
		l, err := OpenOptions(path, testKey, Options{SyncEvery: 8})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	const workers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(l *Log) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.Append(context.Background(), "exec", "sb", map[string]int{"i": i}); err != nil {
					errs <- err
				}
			}
		}(logs[w%2])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if res := verifyPath(t, path); !res.OK || res.Entries != workers*each {
		t.Fatalf("verify: %+v", res)
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	l1, path := openTemp(t)
	l2, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l1.lockFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l1.unlockFile()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := l2.Append(ctx, "t", "", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append while locked: %v", err)
	}
}
