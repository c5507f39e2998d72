package credential

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"unsafe"
)

// Injection is what a backend applies to one process: each field reaches
// only its own channel. Every byte of it lives in buffers owned by the
// Injection, which Zero overwrites.
type Injection struct {
	// Env holds "VAR=value" pairs to add to the payload's environment.
	Env []string
	// Stdin is the payload's standard input, nil if no secret goes there.
	Stdin []byte
	// FDs maps a payload file descriptor (>= 3) to the bytes to deliver on
	// it through a pipe (see PipeFor and ExtraFiles).
	FDs map[int][]byte
	// Proxy lists secrets for the egress proxy to substitute; they are not
	// given to the payload at all.
	Proxy []ProxySecret

	bufs [][]byte // every buffer handed out above
}

// ProxySecret is a secret the egress proxy may substitute for Hosts.
// Printing or encoding it shows the name and hosts only.
type ProxySecret struct {
	Name  string
	Hosts []string
	Value []byte
}

// String returns "NAME=proxy:HOST,...".
func (p ProxySecret) String() string { return p.Name + "=proxy:" + strings.Join(p.Hosts, ",") }

// GoString is String.
func (p ProxySecret) GoString() string { return p.String() }

// Format writes String whatever the verb.
func (p ProxySecret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// MarshalJSON encodes String as a JSON string.
func (p ProxySecret) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// String summarises the channels without any value, for example
// "injection{env:[API_TOKEN] stdin:true fds:[3] proxy:[GH=proxy:api.github.com]}".
func (inj Injection) String() string {
	vars := make([]string, len(inj.Env))
	for i, kv := range inj.Env {
		vars[i], _, _ = strings.Cut(kv, "=")
	}
	fds := slices.Sorted(maps.Keys(inj.FDs))
	return fmt.Sprintf("injection{env:%v stdin:%t fds:%v proxy:%v}", vars, inj.Stdin != nil, fds, inj.Proxy)
}

// GoString is String, so that %#v shows no value either.
func (inj Injection) GoString() string { return inj.String() }

// Format writes String whatever the verb.
func (inj Injection) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, inj.String()) }

// MarshalJSON encodes String as a JSON string, never the values.
func (inj Injection) MarshalJSON() ([]byte, error) { return json.Marshal(inj.String()) }

// Plan resolves bindings against the store. An invalid binding is
// ErrSyntax; two bindings of one channel are ErrConflict (CheckConflicts);
// a missing secret is ErrNotFound naming it. The result holds copies: Zero
// it as soon as the process has started.
func (s *Store) Plan(bindings []Binding) (*Injection, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	for _, b := range bindings {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("secret binding %s: %w", b.Name, err)
		}
	}
	if _, err := CheckConflicts(bindings); err != nil {
		return nil, err
	}
	inj := &Injection{}
	for _, b := range bindings {
		if err := s.planOne(inj, b); err != nil {
			inj.Zero()
			return nil, err
		}
	}
	return inj, nil
}

// CheckConflicts finds the first binding that takes a channel an earlier
// binding already holds: two bindings of one env var or fd, two stdin
// bindings, or two proxy bindings of one secret. A proxy binding also holds
// the env var named after its secret, where its placeholder lives. It returns that binding's
// index and an error wrapping ErrConflict naming the channel, or -1 and nil
// when every binding has a channel of its own. Plan runs the same check;
// callers run it early to reject a configuration before any exec.
func CheckConflicts(bindings []Binding) (int, error) {
	if len(bindings) < 2 { // inlined fast path: one binding cannot conflict
		return -1, nil
	}
	return firstConflict(bindings)
}

// firstConflict is CheckConflicts for two bindings or more.
func firstConflict(bindings []Binding) (int, error) {
	seen := make(map[string]bool, 2*len(bindings))
	for i, b := range bindings {
		for _, channel := range channelKeys(b) {
			if channel == "" {
				continue
			}
			if seen[channel] {
				return i, fmt.Errorf("%w: %s is bound twice (binding %s)", ErrConflict, channel, b)
			}
			seen[channel] = true
		}
	}
	return -1, nil
}

// planOne adds the valid binding b to inj.
func (s *Store) planOne(inj *Injection, b Binding) error {
	sec, ok := s.secrets[b.Name]
	if !ok {
		return fmt.Errorf("%w: %s (binding %s)", ErrNotFound, b.Name, b)
	}
	v := sec.Bytes()
	switch b.Method {
	case MethodEnv:
		inj.Env = append(inj.Env, inj.ownString(b.EnvVar+"=", v))
	case MethodStdin:
		inj.Stdin = inj.own(nil, v)
	case MethodFD:
		if inj.FDs == nil {
			inj.FDs = make(map[int][]byte)
		}
		inj.FDs[b.FD] = inj.own(nil, v)
	case MethodProxy:
		inj.Proxy = append(inj.Proxy, ProxySecret{Name: b.Name, Hosts: slices.Clone(b.Hosts), Value: inj.own(nil, v)})
	}
	return nil
}

// channelKeys names the channels a binding occupies: one, or for a proxy
// binding two — the substitution, and the environment variable named after
// the secret that holds its placeholder in the sandbox.
func channelKeys(b Binding) [2]string {
	switch b.Method {
	case MethodEnv:
		return [2]string{"env var " + b.EnvVar}
	case MethodFD:
		return [2]string{fmt.Sprintf("fd %d", b.FD)}
	case MethodProxy:
		return [2]string{"proxy substitution of " + b.Name, "env var " + b.Name}
	}
	return [2]string{b.Method.String()}
}

// own returns a new buffer holding prefix+v and remembers it for Zero.
func (inj *Injection) own(prefix, v []byte) []byte {
	buf := make([]byte, 0, len(prefix)+len(v))
	buf = append(append(buf, prefix...), v...)
	inj.bufs = append(inj.bufs, buf)
	return buf
}

// ownString is own as a string that shares the owned buffer, so that Zero
// wipes the bytes an environment entry points to. This steps outside Go's
// promise that strings are immutable: Zero must be called only when nobody
// uses the Env strings any more (after the child process has started).
func (inj *Injection) ownString(prefix string, v []byte) string {
	buf := inj.own([]byte(prefix), v)
	return unsafe.String(unsafe.SliceData(buf), len(buf))
}

// Zero overwrites every byte of the injection (Env strings included) and
// clears its fields. Call it once the process has started (its Env strings
// are no longer in use); values given to ExtraFiles and PipeFor have
// already been copied.
func (inj *Injection) Zero() {
	for _, b := range inj.bufs {
		clear(b)
	}
	inj.bufs = nil
	inj.Env, inj.Stdin, inj.FDs, inj.Proxy = nil, nil, nil, nil
}

// ExtraFiles returns, for exec.Cmd.ExtraFiles, a slice whose entry i is the
// read end of a pipe delivering FDs[3+i] (nil where no fd is bound, which
// leaves that descriptor closed in the child). The caller must close the
// files after starting the child; the values are copied, so Zero may be
// called at once.
func (inj *Injection) ExtraFiles(ctx context.Context) ([]*os.File, error) {
	if len(inj.FDs) == 0 {
		return nil, nil
	}
	highest := 0
	for fd := range inj.FDs {
		highest = max(highest, fd)
	}
	files := make([]*os.File, highest-2)
	for fd, v := range inj.FDs {
		r, err := PipeFor(ctx, v)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("fd %d: %w", fd, err)
		}
		files[fd-3] = r
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// PipeFor returns the read end of a new pipe into which a goroutine writes
// a private copy of value and then closes the write end. Give the file to
// the child (for example as exec.Cmd.ExtraFiles[N-3] for fd N) and close it
// in the parent after the child has started. The writer stops early, and the
// copy is wiped, when the child closes the pipe or exits, or when ctx ends;
// use a context that ends with the sandbox, or a value larger than the pipe
// buffer (64 KiB) that is never read keeps the goroutine waiting.
func PipeFor(ctx context.Context, value []byte) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("credential: pipe: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("credential: pipe: %w", err)
	}
	buf := slices.Clone(value)
	go func() {
		stop := context.AfterFunc(ctx, func() { w.Close() })
		defer stop()
		_, _ = w.Write(buf) // an error means the reader went away: nothing to do
		clear(buf)
		w.Close()
	}()
	return r, nil
}
