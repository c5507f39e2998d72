package wasm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// Opcodes and encodings of the table modules.
const (
	opIf         = 0x04
	opRefFunc    = 0xd2
	opPrefixFC   = 0xfc
	opTableGrow  = 0x0f
	refFuncref   = 0x70
	importTable  = 0x01
	unboundedMax = 0x08000000 // 2^27 entries: 1 GiB of references per grow
)

// tableModule is a WASI command with one funcref table of the given
// limits (encoded) whose _start runs body.
func tableModule(limits []byte, body ...[]byte) []byte {
	return cat(wasmHeader,
		section(secType, vec(funcType(nil, nil))),
		section(secFunction, vec([]byte{0})),
		section(secTable, vec(cat([]byte{refFuncref}, limits))),
		section(secExport, vec(cat(wname("_start"), []byte{0x00, 0}))),
		section(secCode, vec(funcBody(body...))),
	)
}

func noMax(min uint32) []byte        { return cat([]byte{limitsNoMax}, uleb(min)) }
func withMax(min, max uint32) []byte { return cat([]byte{limitsMax}, uleb(min), uleb(max)) }

// growOrTrap grows table 0 by delta entries (filled with a reference to
// function 0) and traps unless table.grow returned want.
func growOrTrap(delta, want int32) []byte {
	return cat([]byte{opRefFunc, 0}, i32Const(delta), []byte{opPrefixFC, opTableGrow, 0},
		i32Const(want), []byte{opI32Ne, opIf, opBlockVoid, opUnreachable, opEnd})
}

// tableBomb is the adversarial module: a table without a maximum that
// asks wazero for 2^27 more entries twice (2 GiB of host memory). Before
// kavach bounded tables, both grows succeeded under any memory limit.
// Here each grow must fail (-1); the module traps if one succeeds.
var tableBomb = tableModule(noMax(0), growOrTrap(unboundedMax, -1), growOrTrap(unboundedMax, -1))

func TestTableBombIsRefusedGrowth(t *testing.T) {
	if len(tableBomb) > 100 {
		t.Fatalf("table bomb is %d bytes; it is meant to be tiny", len(tableBomb))
	}
	p := policy.Strict()
	p.Limits.Memory = 64 << 20
	inst := newSandbox(t, p)
	out, err := inst.ExecModule(context.Background(), tableBomb, &backend.ExecRequest{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Exit 0 means both table.grow calls returned -1: nothing was allocated.
	if out.Status != backend.StatusExited || out.ExitCode != 0 {
		t.Fatalf("status %s exit %d error %q: a table grew past its bound", out.Status, out.ExitCode, out.Error)
	}
}

func TestTableGrowsWithinItsDeclaredMaximum(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	// 10 entries, then up to the maximum of 1000, then one more fails.
	mod := tableModule(withMax(10, 1000), growOrTrap(990, 10), growOrTrap(1, -1))
	out, err := inst.ExecModule(context.Background(), mod, &backend.ExecRequest{Timeout: 30 * time.Second})
	if err != nil || out.Status != backend.StatusExited || out.ExitCode != 0 {
		t.Fatalf("%+v, %v: want table.grow to work up to the declared maximum and no further", out, err)
	}
}

func TestTablesCountAgainstTheMemoryLimit(t *testing.T) {
	p := policy.Strict()
	p.Limits.Memory = 4 << 20
	inst := newSandbox(t, p)
	// 2^20 entries may take 8 MiB: past a 4 MiB limit before it runs.
	mod := tableModule(withMax(0, MaxTableEntries), growOrTrap(1, 0))
	out, err := inst.ExecModule(context.Background(), mod, &backend.ExecRequest{})
	if err != nil || out.Status != backend.StatusOOM || !strings.Contains(out.Error, "tables of up to 8 MiB") {
		t.Fatalf("%+v, %v; want oom naming the tables", out, err)
	}
	// Linear memory gets what the tables leave: a 4 MiB limit with a
	// 2 MiB table leaves 2 MiB (32 pages) of linear memory.
	mod = cat(wasmHeader,
		section(secType, vec(funcType(nil, nil))),
		section(secFunction, vec([]byte{0})),
		section(secTable, vec(cat([]byte{refFuncref}, withMax(0, 1<<18)))),
		section(secMemory, vec([]byte{0, 1})),
		section(secExport, vec(cat(wname("_start"), []byte{0x00, 0}))),
		section(secCode, vec(funcBody(i32Const(31), []byte{opMemoryGrow, 0, opDrop},
			i32Const(1), []byte{opMemoryGrow, 0}, i32Const(-1), []byte{opI32Ne, opIf, opBlockVoid, opUnreachable, opEnd}))))
	out, err = inst.ExecModule(context.Background(), mod, &backend.ExecRequest{})
	if err != nil || out.Status != backend.StatusExited || out.ExitCode != 0 {
		t.Fatalf("%+v, %v; want memory.grow past 2 MiB refused", out, err)
	}
}

func TestUnboundableTablesAreInvalid(t *testing.T) {
	inst := newSandbox(t, policy.Strict())
	for name, tc := range map[string]struct {
		mod  []byte
		want string
	}{
		"max past bound": {tableModule(withMax(0, MaxTableEntries+1)), "past kavach's bound"},
		"min past bound": {tableModule(noMax(MaxTableEntries + 1)), "past kavach's bound"},
		"imported table": {cat(wasmHeader,
			section(secType, vec(funcType(nil, nil))),
			section(secImport, vec(cat(wname(wasiModule), wname("t"), []byte{importTable, refFuncref}, noMax(0)))),
			section(secFunction, vec([]byte{0})),
			section(secExport, vec(cat(wname("_start"), []byte{0x00, 0}))),
			section(secCode, vec(funcBody())),
		), "imports a table"},
		"truncated table section": {cat(wasmHeader, section(secTable, []byte{1, refFuncref, limitsMax, 1})), "malformed"},
	} {
		out, err := inst.ExecModule(context.Background(), tc.mod, &backend.ExecRequest{})
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %+v, %v; want ErrInvalidModule with %q", name, out, err, tc.want)
		}
	}
}

// TestGoToolchainTable records what Go's wasip1 toolchain emits: one
// funcref table with no maximum, which kavach bounds to its initial size
// (Go never grows it), without touching the caller's bytes.
func TestGoToolchainTable(t *testing.T) {
	r := &wasmReader{b: guestBin, off: len(wasmHeader)}
	var tables []table
	for !r.done() {
		id, body := r.byte(), r.sub(r.u32())
		if id == secTable {
			var err error
			if tables, err = readTables(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(tables) != 1 || !tables[0].addedMax || tables[0].min < 1000 {
		t.Fatalf("Go module tables %+v: want one table of its functions, without a maximum", tables)
	}
	orig := bytes.Clone(guestBin)
	bounded, n, err := boundTables(guestBin)
	if err != nil {
		t.Fatal(err)
	}
	if n != uint64(tables[0].min)*tableEntryBytes || !bytes.Equal(guestBin, orig) || bytes.Equal(bounded, guestBin) {
		t.Fatalf("table bytes %d (want %d), input changed %v, bounded module unchanged %v", n, tables[0].min*8, !bytes.Equal(guestBin, orig), bytes.Equal(bounded, guestBin))
	}
	if _, again, err := boundTables(bounded); err != nil || again != n {
		t.Fatalf("bounded module re-checked: %d, %v", again, err)
	}
}
