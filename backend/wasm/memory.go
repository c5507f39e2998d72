package wasm

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// memoryLimiter enforces one exec's memory limit. It is the allocator
// behind the module's linear memory: wazero asks it for every memory.grow,
// and a refusal makes memory.grow return -1 to the module, exactly as if
// the module had declared that maximum. Unlike a runtime-wide
// WithMemoryLimitPages, the limit is per exec (one runtime and one compiled
// module serve every limit) and kavach learns that growth was refused, so
// a module that then fails is reported as "oom" rather than as a plain
// crash.
type memoryLimiter struct {
	limit   uint64
	peak    atomic.Uint64 // largest size granted, bytes
	refused atomic.Uint64 // largest size refused, bytes (0: none)
}

func newMemoryLimiter(limit uint64) *memoryLimiter { return &memoryLimiter{limit: limit} }

// Allocate implements experimental.MemoryAllocator.
func (l *memoryLimiter) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	return &linearMemory{l: l, max: min(maxBytes, l.limit), buf: make([]byte, 0, min(capBytes, l.limit))}
}

// linearMemory is a growable byte slice that never exceeds the limit.
type linearMemory struct {
	l   *memoryLimiter
	max uint64
	buf []byte
}

// Reallocate grows the memory to size bytes, or returns nil when that
// would pass the limit.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		m.l.noteRefused(size)
		return nil
	}
	if size > uint64(cap(m.buf)) {
		// Amortize growth like append, within the limit. Fresh pages
		// from the Go heap are zero, as WebAssembly requires.
		grown := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.max))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.buf = m.buf[:size]
	m.l.notePeak(size)
	return m.buf
}

// Free drops the memory.
func (m *linearMemory) Free() { m.buf = nil }

func (l *memoryLimiter) notePeak(size uint64) {
	for {
		p := l.peak.Load()
		if size <= p || l.peak.CompareAndSwap(p, size) {
			return
		}
	}
}

func (l *memoryLimiter) noteRefused(size uint64) {
	for {
		r := l.refused.Load()
		if size <= r || l.refused.CompareAndSwap(r, size) {
			return
		}
	}
}
