package credential

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// MaxSecretSize is the largest secret value a Source may produce.
const MaxSecretSize = 1 << 20

// Source says where a secret value comes from. It is read once, by
// Store.Add. Printing a Source shows its kind and reference (for example
// "env:TOKEN"), never a value.
type Source struct {
	kind  sourceKind
	value func() *box     // sourceValue, hidden from reflection like Secret's
	ref   string          // env var name or file path
	argv  []string        // sourceCommand
	ctx   context.Context // sourceCommand
}

type sourceKind int

const (
	sourceNone sourceKind = iota
	sourceValue
	sourceEnv
	sourceFile
	sourceCommand
)

// FromValue uses b as the value. Store.Add copies it, so the caller may
// wipe b once Add returns.
func FromValue(b []byte) Source { return Source{kind: sourceValue, value: hide(b)} }

// FromEnv reads the caller's environment variable name. Note that a value
// that was in kavach's environment at start-up stays visible in
// /proc/self/environ; files and commands avoid that.
func FromEnv(name string) Source { return Source{kind: sourceEnv, ref: name} }

// FromFile reads the caller's file at path (a regular file, FIFO or device,
// at most MaxSecretSize bytes). One final "\n" or "\r\n" is removed.
func FromFile(path string) Source { return Source{kind: sourceFile, ref: path} }

// FromCommand runs argv (without a shell) and uses its standard output,
// minus one final "\n" or "\r\n". The command inherits the caller's
// environment, reads /dev/null and its stderr is discarded so that nothing
// it prints can reach kavach's errors or logs. It runs until ctx or the
// context given to Store.Add ends, whichever comes first.
func FromCommand(ctx context.Context, argv ...string) Source {
	return Source{kind: sourceCommand, argv: append([]string(nil), argv...), ctx: ctx}
}

// String describes the source without its value: "value", "env:NAME",
// "file:PATH" or "command:ARGV0".
func (s Source) String() string {
	switch s.kind {
	case sourceValue:
		return "value"
	case sourceEnv:
		return "env:" + s.ref
	case sourceFile:
		return "file:" + s.ref
	case sourceCommand:
		if len(s.argv) == 0 {
			return "command:"
		}
		return "command:" + s.argv[0]
	}
	return "none"
}

// GoString is String, so that %#v cannot print a FromValue value.
func (s Source) GoString() string { return s.String() }

// Format writes String whatever the verb.
func (s Source) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// load reads the value into a new buffer owned by the caller.
func (s Source) load(ctx context.Context) ([]byte, error) {
	var v []byte
	var err error
	switch s.kind {
	case sourceValue:
		v = bytes.Clone(s.value().b)
	case sourceEnv:
		v, err = loadEnv(s.ref)
	case sourceFile:
		v, err = loadFile(s.ref)
	case sourceCommand:
		v, err = loadCommand(ctx, s.ctx, s.argv)
	default:
		err = errors.New("empty source")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSource, s, err)
	}
	if len(v) > MaxSecretSize {
		clear(v)
		return nil, fmt.Errorf("%w: %s: value larger than %d bytes", ErrSource, s, MaxSecretSize)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrEmpty, s)
	}
	return v, nil
}

func loadEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, errors.New("variable not set")
	}
	return []byte(v), nil
}

func loadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if fi.IsDir() {
		return nil, errors.New("is a directory")
	}
	w := &wipingBuffer{limit: MaxSecretSize}
	if _, err := w.ReadFrom(f); err != nil {
		w.wipe()
		return nil, fmt.Errorf("read: %w", err)
	}
	return trimNewline(w.b), nil
}

func loadCommand(ctx, cmdCtx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command given")
	}
	if cmdCtx != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(cmdCtx, cancel)()
	}
	out := &wipingBuffer{limit: MaxSecretSize}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = out
	cmd.WaitDelay = time.Second // do not hang on a grandchild holding stdout
	if err := cmd.Run(); err != nil {
		out.wipe()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("command stopped: %w", ctx.Err())
		}
		return nil, commandError(err)
	}
	return trimNewline(out.b), nil
}

// commandError describes a failed command without any of its output.
func commandError(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("command failed: %s", exit.ProcessState)
	}
	return err
}

// trimNewline drops one final "\n" or "\r\n".
func trimNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// wipingBuffer is an io.Writer and io.ReaderFrom that zeroes its old
// storage whenever it grows, so reading a secret leaves no stale partial
// copies on the heap. ReadFrom reads straight into the buffer, so io.Copy
// (used by os/exec for Stdout) needs no intermediate buffer.
type wipingBuffer struct {
	b     []byte
	limit int
}

// ReadFrom reads r to EOF into the buffer.
func (w *wipingBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if len(w.b) == cap(w.b) {
			w.grow(1)
		}
		n, err := r.Read(w.b[len(w.b):cap(w.b)])
		w.b = w.b[:len(w.b)+n]
		total += int64(n)
		switch {
		case len(w.b) > w.limit:
			return total, errTooLarge
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// grow makes room for n more bytes, wiping the old storage. Capacity never
// exceeds limit+1: one byte past the limit is enough to detect overflow.
func (w *wipingBuffer) grow(n int) {
	if len(w.b)+n <= cap(w.b) {
		return
	}
	grown := make([]byte, len(w.b), min(max(2*cap(w.b), len(w.b)+n, 512), w.limit+1))
	copy(grown, w.b)
	clear(w.b[:cap(w.b)])
	w.b = grown
}

// Write appends p, refusing to exceed the limit.
func (w *wipingBuffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.limit {
		return 0, errTooLarge
	}
	w.grow(len(p))
	w.b = append(w.b, p...)
	return len(p), nil
}

// wipe zeroes all storage and empties the buffer.
func (w *wipingBuffer) wipe() {
	clear(w.b[:cap(w.b)])
	w.b = nil
}

// errTooLarge reports a value over MaxSecretSize.
var errTooLarge = fmt.Errorf("value larger than %d bytes", MaxSecretSize)
