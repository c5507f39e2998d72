package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// writeChain creates an audit file with n entries and returns its path.
func writeChain(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenOptions(path, testKey, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		payload := map[string]any{"i": i, "argv": []string{"sh", "-c", "echo hi"}, "status": "exited"}
		if _, err := l.Append(context.Background(), "sandbox.exec", "sb-1", payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readLines returns the file's lines, each with its newline.
func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func mustVerify(t testing.TB, data []byte, key []byte) VerifyResult {
	t.Helper()
	res, err := Verify(bytes.NewReader(data), key)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}
