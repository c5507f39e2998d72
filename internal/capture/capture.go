// Package capture collects a sandbox's output streams with a cap: bytes
// beyond the cap are read and discarded, so the payload never blocks on a
// full pipe, and the stream is flagged as truncated.
package capture

import "sync"

// Buffer is an io.Writer that keeps at most Max bytes. It is safe for
// concurrent use.
type Buffer struct {
	mu        sync.Mutex
	max       int64
	buf       []byte
	dropped   int64
	truncated bool
}

// New returns a buffer that keeps at most max bytes (max <= 0: nothing).
func New(max int64) *Buffer { return &Buffer{max: max} }

// Write keeps what fits under the cap and discards the rest. It never fails,
// so the copier feeding it keeps draining the pipe.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - int64(len(b.buf))
	switch {
	case room <= 0:
		b.dropped += int64(len(p))
	case int64(len(p)) <= room:
		b.buf = append(b.buf, p...)
		return len(p), nil
	default:
		b.buf = append(b.buf, p[:room]...)
		b.dropped += int64(len(p)) - room
	}
	if len(p) > 0 {
		b.truncated = b.truncated || b.dropped > 0
	}
	return len(p), nil
}

// Bytes returns the kept bytes (never nil).
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return []byte{}
	}
	return b.buf
}

// Truncated reports whether bytes were discarded.
func (b *Buffer) Truncated() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.truncated
}

// Dropped returns how many bytes were discarded.
func (b *Buffer) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
