package wasm

// A minimal WebAssembly binary encoder: enough to hand-assemble the tiny
// modules that Probe runs and that the tests and benchmarks use, without
// a toolchain.

// Section ids of the WebAssembly binary format.
const (
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secExport   = 7
	secCode     = 10
	secData     = 11
)

// Value types and opcodes used by the hand-made modules.
const (
	typeI32 = 0x7f

	opUnreachable = 0x00
	opLoop        = 0x03
	opBr          = 0x0c
	opEnd         = 0x0b
	opCall        = 0x10
	opDrop        = 0x1a
	opI32Load     = 0x28
	opI32Const    = 0x41
	opBlockVoid   = 0x40
)

func uleb(v uint32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// sleb encodes a signed 32-bit integer (i32.const immediates).
func sleb(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func vec(items ...[]byte) []byte { return cat(uleb(uint32(len(items))), cat(items...)) }

func wname(s string) []byte { return cat(uleb(uint32(len(s))), []byte(s)) }

func section(id byte, body []byte) []byte { return cat([]byte{id}, uleb(uint32(len(body))), body) }

func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, vec(bytesOf(params)...), vec(bytesOf(results)...))
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func i32Const(v int32) []byte { return cat([]byte{opI32Const}, sleb(v)) }

// funcBody wraps instructions into a code entry without locals.
func funcBody(instrs ...[]byte) []byte {
	body := cat([]byte{0}, cat(instrs...), []byte{opEnd})
	return cat(uleb(uint32(len(body))), body)
}

// activeData is a data segment for memory 0 at a constant offset.
func activeData(offset int32, data []byte) []byte {
	return cat([]byte{0}, i32Const(offset), []byte{opEnd}, wname(string(data)))
}

var wasmHeader = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// helloModule is a 120-byte WASI command that writes msg to stdout with
// fd_write and returns from _start.
func helloModule(msg string) []byte {
	iov := []byte{16, 0, 0, 0, byte(len(msg)), 0, 0, 0}
	return cat(wasmHeader,
		section(secType, vec(funcType([]byte{typeI32, typeI32, typeI32, typeI32}, []byte{typeI32}), funcType(nil, nil))),
		section(secImport, vec(cat(wname("wasi_snapshot_preview1"), wname("fd_write"), []byte{0x00, 0}))),
		section(secFunction, vec([]byte{1})),
		section(secMemory, vec([]byte{0, 1})),
		section(secExport, vec(cat(wname("memory"), []byte{0x02, 0}), cat(wname("_start"), []byte{0x00, 1}))),
		section(secCode, vec(funcBody(i32Const(1), i32Const(0), i32Const(1), i32Const(8), []byte{opCall, 0, opDrop}))),
		section(secData, vec(activeData(0, iov), activeData(16, []byte(msg)))),
	)
}
