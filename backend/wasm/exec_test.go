package wasm

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// TestTimeoutCoversCompilation: a module whose compile takes longer than
// the exec's timeout ends as a timeout, and the abandoned compile is not
// cached, so a later exec compiles and runs it.
func TestTimeoutCoversCompilation(t *testing.T) {
	d := NewWithOptions(Options{NoFileCache: true})
	defer d.Close(context.Background())
	inst := newSandboxOf(t, d, policy.Strict())
	out, err := inst.ExecModule(context.Background(), guestBin,
		&backend.ExecRequest{Argv: []string{"guest", "hello"}, Timeout: 20 * time.Millisecond})
	if err != nil || out.Status != backend.StatusTimeout {
		t.Fatalf("%+v, %v; want a timeout while compiling", out, err)
	}
	if st := d.Stats(); st.Cached != 0 {
		t.Fatalf("stats %+v: the compile ran to completion despite the timeout", st)
	}
	out, err = inst.ExecModule(context.Background(), guestBin,
		&backend.ExecRequest{Argv: []string{"guest", "hello"}, Timeout: policy.DefaultTimeout, MaxOutput: 100})
	if err != nil || out.Status != backend.StatusExited || string(out.Stdout) != "hello from wasm\n" {
		t.Fatalf("%+v, %v; want the module compiled and run", out, err)
	}
}

// TestWaitingForACompileHonorsContext: an exec waiting for another
// exec's compile of the same module gives up when its context ends, and
// one whose compile was abandoned compiles the module itself.
func TestWaitingForACompileHonorsContext(t *testing.T) {
	e, err := newEngine(context.Background(), Options{NoFileCache: true}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer e.close(context.Background())
	key := sha256.Sum256(tinyModule)
	owner, ok := e.lookup(key) // a compile in progress that never finishes
	if !ok {
		t.Fatal("empty cache has an entry")
	}

	ctx, cancel := context.WithCancel(context.Background())
	got := acquireAsync(e, ctx)
	cancel()
	if res := waitAcquire(t, got); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("waiter with a canceled context: %v", res.err)
	}

	got = acquireAsync(e, context.Background())
	owner.err = errCompileCanceled // its exec timed out
	e.forget(owner)
	close(owner.ready)
	e.release(owner)
	res := waitAcquire(t, got)
	if res.err != nil || res.c.mod == nil {
		t.Fatalf("waiter after an abandoned compile: %v", res.err)
	}
	e.release(res.c)
	if n := e.compiles.Load(); n != 1 {
		t.Fatalf("%d compiles, want 1", n)
	}
}

type acquired struct {
	c   *compiled
	err error
}

func acquireAsync(e *engine, ctx context.Context) chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		c, err := e.acquire(ctx, tinyModule)
		ch <- acquired{c, err}
	}()
	return ch
}

func waitAcquire(t *testing.T, ch chan acquired) acquired {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("acquire is still waiting")
		return acquired{}
	}
}

// TestStdinDoesNotOutliveTheExec: after an exec, nothing of it is left
// reading the caller's stdin, and every byte it did not read is still
// there for the caller.
func TestStdinDoesNotOutliveTheExec(t *testing.T) {
	inst := newSandbox(t, policy.Strict())

	// A pipe the module blocks on until its timeout: the blocked read is
	// interrupted, and the deadline cleared again.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{guestWasm, "echo"}, Stdin: r, Timeout: 100 * time.Millisecond})
	if err != nil || out.Status != backend.StatusTimeout {
		t.Fatalf("%+v, %v; want timeout", out, err)
	}
	noExecGoroutines(t)
	_, _ = w.WriteString("later")
	w.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "later" {
		t.Fatalf("caller read %q, %v after the exec; want %q", b, err, "later")
	}

	// A reader without deadlines that the module never reads: it is not
	// read at all.
	pr, pw := io.Pipe()
	defer pr.Close()
	wantExit(t, run(t, inst, &backend.ExecRequest{Argv: []string{guestWasm, "hello"}, Stdin: pr, Timeout: policy.DefaultTimeout}), 0)
	noExecGoroutines(t)
	go func() { _, _ = io.WriteString(pw, "mine"); pw.Close() }()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(pr); got <- string(b) }()
	select {
	case s := <-got:
		if s != "mine" {
			t.Fatalf("caller read %q; want %q", s, "mine")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the exec's stdin goroutine took the caller's bytes")
	}
}

// noExecGoroutines waits until no goroutine runs code of this package
// other than the test itself.
func noExecGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if left = execGoroutines(); len(left) == 0 {
			return
		}
	}
	t.Fatalf("goroutines left after the exec:\n%s", strings.Join(left, "\n\n"))
}

func execGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kavach/backend/wasm.") && !strings.Contains(g, "kavach/backend/wasm.Test") &&
			!strings.Contains(g, "testing.(*M)") {
			left = append(left, g)
		}
	}
	return left
}
