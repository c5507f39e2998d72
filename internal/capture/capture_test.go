package capture

import (
	"bytes"
	"testing"
)

func TestBufferCapsAndDrains(t *testing.T) {
	b := New(10)
	for _, chunk := range []string{"hello", " world", "!!!"} {
		n, err := b.Write([]byte(chunk))
		if err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v; want full write", chunk, n, err)
		}
	}
	if got := string(b.Bytes()); got != "hello worl" {
		t.Fatalf("kept %q, want %q", got, "hello worl")
	}
	if !b.Truncated() || b.Dropped() != 4 {
		t.Fatalf("truncated=%v dropped=%d, want true 4", b.Truncated(), b.Dropped())
	}
}

func TestBufferExactFitIsNotTruncated(t *testing.T) {
	b := New(5)
	_, _ = b.Write([]byte("12345"))
	_, _ = b.Write(nil)
	if b.Truncated() || !bytes.Equal(b.Bytes(), []byte("12345")) {
		t.Fatalf("exact fit: truncated=%v bytes=%q", b.Truncated(), b.Bytes())
	}
	if New(0).Bytes() == nil {
		t.Fatal("Bytes must never be nil")
	}
}
