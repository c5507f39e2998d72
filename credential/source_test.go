package credential

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func addGet(t *testing.T, src Source) ([]byte, error) {
	t.Helper()
	s := NewStore()
	defer s.Close()
	if err := s.Add(context.Background(), "S", src); err != nil {
		if revealed(err.Error(), testValue) {
			t.Fatalf("error reveals the value: %v", err)
		}
		return nil, err
	}
	sec, err := s.Get("S")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(sec.Bytes()), nil
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSources(t *testing.T) {
	t.Setenv("KAVACH_TEST_SECRET", testValue)
	t.Setenv("KAVACH_TEST_EMPTY", "")
	ctx := context.Background()
	cases := []struct {
		name string
		src  Source
		want string
		err  error
	}{
		{"value", FromValue([]byte(testValue)), testValue, nil},
		{"value keeps newline", FromValue([]byte(testValue + "\n")), testValue + "\n", nil},
		{"empty value", FromValue(nil), "", ErrEmpty},
		{"env", FromEnv("KAVACH_TEST_SECRET"), testValue, nil},
		{"env unset", FromEnv("KAVACH_TEST_UNSET_VAR"), "", ErrSource},
		{"env empty", FromEnv("KAVACH_TEST_EMPTY"), "", ErrEmpty},
		{"file", FromFile(writeFile(t, testValue)), testValue, nil},
		{"file newline trimmed once", FromFile(writeFile(t, testValue+"\n\n")), testValue + "\n", nil},
		{"file crlf trimmed", FromFile(writeFile(t, testValue+"\r\n")), testValue, nil},
		{"file binary", FromFile(writeFile(t, "\x00\xff"+testValue)), "\x00\xff" + testValue, nil},
		{"file empty", FromFile(writeFile(t, "")), "", ErrEmpty},
		{"file missing", FromFile(filepath.Join(t.TempDir(), "nope")), "", os.ErrNotExist},
		{"file is dir", FromFile(t.TempDir()), "", ErrSource},
		{"file too large", FromFile(writeFile(t, strings.Repeat("x", MaxSecretSize+1))), "", ErrSource},
		{"file at limit", FromFile(writeFile(t, strings.Repeat("x", MaxSecretSize))), strings.Repeat("x", MaxSecretSize), nil},
		{"command", FromCommand(ctx, "printf", "%s\n", testValue), testValue, nil},
		{"command output kept but for final newline", FromCommand(ctx, "printf", "a\nb\n\n"), "a\nb\n", nil},
		{"command stderr ignored", FromCommand(ctx, "sh", "-c", "echo noise >&2; printf %s ok"), "ok", nil},
		{"command fails", FromCommand(ctx, "sh", "-c", "printf %s "+testValue+"; echo "+testValue+" >&2; exit 3"), "", ErrSource},
		{"command empty output", FromCommand(ctx, "true"), "", ErrEmpty},
		{"command not found", FromCommand(ctx, "kavach-no-such-command"), "", ErrSource},
		{"command without argv", FromCommand(ctx), "", ErrSource},
		{"command output too large", FromCommand(ctx, "head", "-c", "1048577", "/dev/zero"), "", ErrSource},
		{"zero Source", Source{}, "", ErrSource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := addGet(t, tc.src)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("value = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFromValueCopies(t *testing.T) {
	b := []byte(testValue)
	s := NewStore()
	defer s.Close()
	if err := s.Add(context.Background(), "S", FromValue(b)); err != nil {
		t.Fatal(err)
	}
	clear(b)
	sec, _ := s.Get("S")
	if string(sec.Bytes()) != testValue {
		t.Fatalf("store shares the caller's buffer: %q", sec.Bytes())
	}
}

func TestFromCommandContexts(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := addGet(t, FromCommand(cancelled, "sleep", "10")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled source context: %v", err)
	}
	s := NewStore()
	defer s.Close()
	ctx, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stop()
	start := time.Now()
	err := s.Add(ctx, "S", FromCommand(context.Background(), "sleep", "10"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Add context deadline: %v after %v", err, time.Since(start))
	}
}

func TestSourceString(t *testing.T) {
	for src, want := range map[*Source]string{
		ptr(FromValue([]byte(testValue))):              "value",
		ptr(FromEnv("HOSTVAR")):                        "env:HOSTVAR",
		ptr(FromFile("/run/k")):                        "file:/run/k",
		ptr(FromCommand(context.Background(), "pass")): "command:pass",
	} {
		if src.String() != want {
			t.Errorf("String = %q, want %q", src.String(), want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestWipingBufferWipesOnGrowth(t *testing.T) {
	w := &wipingBuffer{limit: 1 << 20}
	w.Write(bytes.Repeat([]byte("A"), 100))
	old := w.b[:cap(w.b)]
	w.Write(bytes.Repeat([]byte("B"), 1000))
	if bytes.ContainsAny(old, "AB") {
		t.Fatal("old storage not wiped after growth")
	}
	if string(w.b) != strings.Repeat("A", 100)+strings.Repeat("B", 1000) {
		t.Fatal("content corrupted")
	}
	kept := w.b[:cap(w.b)]
	w.wipe()
	if bytes.ContainsAny(kept, "AB") {
		t.Fatal("wipe left bytes")
	}
	if _, err := (&wipingBuffer{limit: 4}).Write([]byte("12345")); err == nil {
		t.Fatal("limit not enforced")
	}
}
