package wasm

// Hand-assembled modules for the tests and benchmarks.

const (
	opBlock      = 0x02
	opBrIf       = 0x0d
	opI32Ne      = 0x47
	opMemoryGrow = 0x40
)

// commandModule is a WASI command whose _start (function 0 after the
// imports) runs body. memPages > 0 adds an exported memory of that
// initial size. imports are (module, name) pairs of () -> () functions.
func commandModule(startName string, memPages int, imports [][2]string, body ...[]byte) []byte {
	var imps [][]byte
	for _, im := range imports {
		imps = append(imps, cat(wname(im[0]), wname(im[1]), []byte{0x00, 0}))
	}
	exports := [][]byte{cat(wname(startName), []byte{0x00}, uleb(uint32(len(imports))))}
	parts := [][]byte{wasmHeader, section(secType, vec(funcType(nil, nil)))}
	if len(imps) > 0 {
		parts = append(parts, section(secImport, vec(imps...)))
	}
	parts = append(parts, section(secFunction, vec([]byte{0})))
	if memPages > 0 {
		parts = append(parts, section(secMemory, vec(cat([]byte{0}, uleb(uint32(memPages))))))
		exports = append(exports, cat(wname("memory"), []byte{0x02, 0}))
	}
	parts = append(parts, section(secExport, vec(exports...)), section(secCode, vec(funcBody(body...))))
	return cat(parts...)
}

var (
	tinyModule        = helloModule("hi\n")
	unreachableModule = commandModule("_start", 0, nil, []byte{opUnreachable})
	oobModule         = commandModule("_start", 1, nil, i32Const(-1), []byte{opI32Load, 2, 0, opDrop})
	recurseModule     = commandModule("_start", 0, nil, []byte{opCall, 0})
	loopModule        = commandModule("_start", 0, nil, []byte{opLoop, opBlockVoid, opBr, 0, opEnd})
	// growModule grows memory 1 MiB at a time until memory.grow fails,
	// then traps, as allocators that abort on failure do.
	growModule = commandModule("_start", 1, nil,
		[]byte{opBlock, opBlockVoid, opLoop, opBlockVoid}, i32Const(16), []byte{opMemoryGrow, 0},
		i32Const(-1), []byte{opI32Ne, opBrIf, 0, opEnd, opEnd, opUnreachable})
	hostImportModule = commandModule("_start", 0, [][2]string{{"env", "foo"}}, []byte{opCall, 0})
	badSigModule     = commandModule("_start", 0, [][2]string{{wasiModule, "fd_write"}}, []byte{opCall, 0})
	reactorModule    = commandModule("_initialize", 0, nil)
	bigMemoryModule  = commandModule("_start", 100, nil)
)
