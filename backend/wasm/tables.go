package wasm

import (
	"errors"
	"fmt"
)

// wazero keeps each table as a Go slice of 8-byte references that
// table.grow extends up to the table's declared maximum, or up to 2^32
// entries (32 GiB) when there is none. Linear memory goes through kavach's
// allocator (memory.go), tables do not, so kavach bounds them before
// compiling: a table without a maximum gets its initial size as maximum
// (Go's toolchain declares none and never grows its table; wasm-ld
// declares maximum = initial), a maximum past MaxTableEntries is refused,
// and the largest size all tables can reach is counted against the exec's
// memory limit. Past the maximum, table.grow returns -1 to the module,
// exactly as memory.grow does past the memory limit.

// MaxTableEntries is the largest size a module's table may reach: its
// declared maximum, or its initial size when it declares none. Toolchains
// size the function table to the module's functions; a million entries
// take 8 MiB of host memory.
const MaxTableEntries = 1 << 20

// tableEntryBytes is what wazero spends on one table entry.
const tableEntryBytes = 8

// Sections, import kinds and limits flags the table check reads.
const (
	secTable       = 4
	importFunction = 0x00
	tableHasInit   = 0x40
	limitsNoMax    = 0x00
	limitsMax      = 0x01
)

var importKinds = map[byte]string{0x00: "function", 0x01: "table", 0x02: "memory", 0x03: "global", 0x04: "tag"}

// boundTables returns the module with a maximum size on every table, and
// the most host memory its tables can then take (the sum of the maxima).
// It refuses, with an error wrapping ErrInvalidModule, a module kavach
// cannot bound: one that imports anything but functions, or has a table
// that may grow past MaxTableEntries. It reads only the import and table
// sections; wazero validates the rest when it compiles. bin is not
// modified: a module that needs a maximum added is copied.
func boundTables(bin []byte) ([]byte, uint64, error) {
	r := &wasmReader{b: bin, off: len(wasmHeader)}
	out, total := bin, uint64(0)
	for !r.done() {
		start := r.off
		id := r.byte()
		body := r.sub(r.u32())
		var err error
		switch id {
		case secImport:
			err = checkImportKinds(body)
		case secTable:
			var tables []table
			if tables, err = readTables(body); err == nil && body.err == nil {
				total = sumMax(tables)
				out = withTables(bin, start, r.off, tables)
			}
		}
		if err != nil {
			return nil, 0, err
		}
		if r.err != nil || body.err != nil {
			return nil, 0, fmt.Errorf("%w: malformed section %d: %w", ErrInvalidModule, id, errors.Join(r.err, body.err))
		}
	}
	return out, total, nil
}

// checkImportKinds refuses imports other than functions: kavach provides
// only WASI functions, and a table, memory, global or tag import is
// something neither wazero's WASI module nor kavach can bound.
func checkImportKinds(r *wasmReader) error {
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		mod, name := r.name(), r.name()
		kind := r.byte()
		if r.err != nil {
			break
		}
		if kind != importFunction {
			what, ok := importKinds[kind]
			if !ok {
				what = fmt.Sprintf("kind %#x", kind)
			}
			return fmt.Errorf("%w: imports a %s (%s.%s), which kavach does not provide", ErrInvalidModule, what, mod, name)
		}
		r.u32() // type index
	}
	return nil
}

// table is one entry of the table section: its element type as encoded,
// its initial size, and its maximum (declared or added by kavach).
type table struct {
	refType  []byte
	min, max uint32
	addedMax bool
}

// readTables decodes a table section and gives every table a maximum.
func readTables(r *wasmReader) ([]table, error) {
	n := r.u32()
	var tables []table
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.peek() == tableHasInit {
			return nil, fmt.Errorf("%w: table %d has an initializer expression, which kavach does not support", ErrInvalidModule, i)
		}
		t := table{refType: r.refType()}
		flags := r.byte()
		t.min = r.u32()
		switch flags {
		case limitsNoMax:
			t.max, t.addedMax = t.min, true
		case limitsMax:
			t.max = r.u32()
		default:
			return nil, fmt.Errorf("%w: table %d has limits flags %#x", ErrInvalidModule, i, flags)
		}
		if r.err == nil && t.max > MaxTableEntries {
			return nil, fmt.Errorf("%w: table %d may grow to %d entries, past kavach's bound of %d",
				ErrInvalidModule, i, t.max, MaxTableEntries)
		}
		tables = append(tables, t)
	}
	return tables, nil
}

func sumMax(tables []table) uint64 {
	var total uint64
	for _, t := range tables {
		total += uint64(t.max) * tableEntryBytes
	}
	return total
}

// withTables returns bin with the table section at bin[start:end]
// re-encoded when kavach added a maximum to one of its tables.
func withTables(bin []byte, start, end int, tables []table) []byte {
	added := false
	items := make([][]byte, len(tables))
	for k, t := range tables {
		added = added || t.addedMax
		items[k] = cat(t.refType, []byte{limitsMax}, uleb(t.min), uleb(t.max))
	}
	if !added {
		return bin
	}
	return cat(bin[:start], section(secTable, vec(items...)), bin[end:])
}

// wasmReader decodes the parts of the binary format the table check
// needs. The first error sticks; reads after it return zero values.
type wasmReader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("unexpected end of section")

func (r *wasmReader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *wasmReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wasmReader) peek() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	return r.b[r.off]
}

func (r *wasmReader) byte() byte {
	c := r.peek()
	if r.err == nil {
		r.off++
	}
	return c
}

// sub returns a reader of the next n bytes and skips them.
func (r *wasmReader) sub(n uint32) *wasmReader {
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.off) {
		r.fail(errTruncated)
	}
	if r.err != nil {
		return &wasmReader{}
	}
	s := &wasmReader{b: r.b[r.off : r.off+int(n)]}
	r.off += int(n)
	return s
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 1<<32-1 {
				break
			}
			return uint32(v)
		}
	}
	r.fail(errors.New("integer too large"))
	return 0
}

// name skips a length-prefixed name and returns it.
func (r *wasmReader) name() string { return string(r.sub(r.u32()).b) }

// refType reads a reference type as encoded: one byte (funcref,
// externref, ...), or a nullable or non-nullable prefix and a signed
// LEB128 heap type of at most 5 bytes.
func (r *wasmReader) refType() []byte {
	const refNull, ref = 0x63, 0x64
	start := r.off
	if c := r.byte(); c == refNull || c == ref {
		for k := 0; r.byte()&0x80 != 0 && r.err == nil; k++ {
			if k == 4 {
				r.fail(errors.New("heap type too long"))
			}
		}
	}
	if r.err != nil {
		return nil
	}
	return r.b[start:r.off]
}
