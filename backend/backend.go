// Package backend defines the driver interface every isolation backend
// implements, the backend names and base scores, and the registry that maps
// names to drivers.
package backend

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/egress"

	"github.com/kavach-sandbox/kavach/policy"
	"github.com/kavach-sandbox/kavach/score"
)

// Name is a backend name.
type Name string

// Backend names. Auto picks the strongest available backend.
const (
	Noop        Name = "noop"
	Process     Name = "process"
	OCI         Name = "oci"
	WASM        Name = "wasm"
	GVisor      Name = "gvisor"
	SGX         Name = "sgx"
	SEV         Name = "sev"
	Firecracker Name = "firecracker"
	Auto        Name = "auto"
)

// Info describes a backend.
type Info struct {
	Name         Name
	Base         int
	SharedKernel bool
	Isolation    string
}

// infos describes every backend, in increasing base score.
var infos = []Info{
	{Noop, 0, false, "none (testing only: runs nothing, returns exit 0)"},
	{Process, 50, true, "namespaces + pivot_root + seccomp-bpf + Landlock + cgroups + rlimits"},
	{OCI, 55, true, "OCI runtime (crun or runc) with a generated runtime-spec bundle"},
	{WASM, 65, false, "WebAssembly + WASI preview 1 in-process (wazero)"},
	{GVisor, 70, false, "gVisor user-space kernel (runsc)"},
	{SGX, 80, false, "Intel SGX enclave (Gramine)"},
	{SEV, 82, false, "AMD SEV-SNP encrypted VM"},
	{Firecracker, 90, false, "Firecracker microVM with a guest agent"},
}

// Names lists the eight backend names in increasing base score.
func Names() []Name {
	out := make([]Name, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// InfoOf returns the static description of a backend.
func InfoOf(n Name) (Info, bool) {
	for _, in := range infos {
		if in.Name == n {
			return in, true
		}
	}
	return Info{}, false
}

// ScoreBackend converts the info for use by the score package.
func (i Info) ScoreBackend() score.Backend {
	return score.NewBackend(i.Base, i.SharedKernel, i.Name == Noop)
}

// ErrUnknown is returned by ParseName for names that are not backends.
var ErrUnknown = errors.New("unknown backend")

// ParseName parses a backend name case-insensitively; "auto" is accepted.
func ParseName(s string) (Name, error) {
	switch n := Name(s); n { // the canonical spelling, without normalizing
	case Noop, Process, OCI, WASM, GVisor, SGX, SEV, Firecracker, Auto:
		return n, nil
	}
	n := Name(strings.ToLower(strings.TrimSpace(s)))
	if n == Auto {
		return Auto, nil
	}
	if _, ok := InfoOf(n); ok {
		return n, nil
	}
	names := make([]string, 0, len(infos)+1)
	for _, in := range infos {
		names = append(names, string(in.Name))
	}
	names = append(names, string(Auto))
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnknown, s, strings.Join(names, ", "))
}

// Availability is the result of probing a backend on this host.
type Availability struct {
	Available bool
	// Reason says why the backend is unavailable, or notes how it runs.
	Reason string
}

// ErrUnavailable is returned when a backend cannot run on this host.
var ErrUnavailable = errors.New("backend unavailable")

// Driver is an isolation backend.
type Driver interface {
	// Info returns the backend's static description.
	Info() Info
	// Probe checks, for real, whether the backend can run sandboxes on
	// this host. Drivers cache the answer.
	Probe(ctx context.Context) Availability
	// Capabilities returns the layers the backend can enforce on this host.
	// It lists each seccomp layer it can apply: a backend that applies
	// allow-lists usually applies the deny-list too and then lists both,
	// or a policy asking for the deny-list is scored without it.
	Capabilities() score.Layers
	// Create prepares a sandbox. The sandbox runs nothing until Exec.
	Create(ctx context.Context, spec *Spec) (Instance, error)
}

// CreateProver is implemented by drivers whose Create starts the real
// thing: a successful Create proves the backend works on this host, and a
// failed one says why. kavach does not probe such a driver before creating
// a sandbox (the probe would start a sandbox of its own).
type CreateProver interface {
	CreateProves() bool
}

// SandboxUID and SandboxGID are the host ids payloads run as on the
// backends that run them as host processes without a user namespace
// (process and oci, as root). They are ids no host account uses: not 65534
// (nobody), which host services run as, and whose processes could then
// read a payload's environment — its secrets — or trace it. The value lies
// above the ranges container managers allocate (up to 0x6FFFFFFF), below
// the range systemd reserves for foreign files (0x7FFE0000) and below 2^31.
const (
	SandboxUID = 0x70000000
	SandboxGID = SandboxUID
)

// StaleCleaner is implemented by drivers whose sandboxes leave state on the
// host when the kavach process that made them dies without destroying them
// (containers, cgroups, directories). CleanupStale removes what processes
// that no longer run left behind, once per process; it costs little more
// than a directory read when there is nothing to remove.
type StaleCleaner interface {
	CleanupStale(ctx context.Context)
}

// Spec is everything a driver needs to create one sandbox.
type Spec struct {
	// ID is the sandbox id, unique on this host.
	ID string
	// Policy is validated and complete.
	Policy policy.Policy
	// Env is the base environment of every exec ("K=V"), already built from
	// the policy (host environment is not inherited unless the policy asks).
	Env []string
	// BestEffort runs with lost layers instead of refusing.
	BestEffort bool
	// Egress configures the egress proxy of an allowlist policy.
	Egress Egress
}

// Egress is what a backend needs to run kavach's egress proxy for a
// sandbox whose policy restricts the network to an allowlist.
type Egress struct {
	// Substitutions swap placeholders the sandbox holds for real secrets,
	// only in requests to their hosts.
	Substitutions []egress.Substitution
	// Resolve, AllowPrivate and UpstreamRoots override the proxy's name
	// resolution, private-range exceptions and upstream trust (tests and
	// private deployments); zero values mean the host's own.
	Resolve       func(ctx context.Context, host string) ([]netip.Addr, error)
	AllowPrivate  []netip.Prefix
	UpstreamRoots *x509.CertPool
	// OnEvent receives every decision of the proxy; it must not block.
	OnEvent func(egress.Event)
}

// Enforcement is what a backend really applied for one sandbox.
type Enforcement struct {
	Layers score.Layers
	// Lost explains, per score modifier name, why an asked layer is missing.
	Lost map[string]string
	// Notes are facts worth reporting, e.g. "landlock ABI 7".
	Notes []string
}

// ExecRequest is one command to run in a sandbox.
type ExecRequest struct {
	Argv []string
	// Env is added to (and overrides) Spec.Env.
	Env []string
	// Stdin is the payload's standard input; nil means empty.
	Stdin io.Reader
	// Workdir overrides the policy's working directory when set.
	Workdir string
	// Timeout is the wall-clock limit; 0 means none.
	Timeout time.Duration
	// MaxOutput caps each of stdout and stderr; the excess is drained.
	MaxOutput int64
	// Files are extra inherited descriptors: fd number → content written
	// into a pipe the payload reads (credential injection).
	Files map[int][]byte
}

// Status is how an exec ended.
type Status string

// Statuses an exec can end with.
const (
	StatusExited   Status = "exited"
	StatusSignaled Status = "signaled"
	StatusTimeout  Status = "timeout"
	StatusOOM      Status = "oom"
	StatusBlocked  Status = "blocked"
	StatusError    Status = "error"
)

// ExecOutput is what a backend reports about one exec.
type ExecOutput struct {
	Status          Status
	ExitCode        int
	Signal          int
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	Duration        time.Duration
	CPUTime         time.Duration
	MaxRSSKB        int64
	// Error describes StatusError (e.g. command not found).
	Error string
}

// Instance is one created sandbox.
type Instance interface {
	// Enforcement reports the layers applied to this sandbox.
	Enforcement() Enforcement
	// Exec runs a command and waits for it.
	Exec(ctx context.Context, req *ExecRequest) (*ExecOutput, error)
	// Pause freezes every process of the sandbox.
	Pause(ctx context.Context) error
	// Resume thaws a paused sandbox.
	Resume(ctx context.Context) error
	// Destroy releases everything the sandbox holds. It is idempotent.
	Destroy(ctx context.Context) error
}

// FileReader is implemented by instances that can hand a file out of the
// sandbox (kavach passes it through the gate before the caller sees it).
type FileReader interface {
	// ReadFile returns the content of path, as seen inside the sandbox.
	// Paths resolve inside the sandbox's view: symlinks and ".." cannot
	// reach the host. More than max bytes is ErrFileTooLarge.
	ReadFile(ctx context.Context, path string, max int64) ([]byte, error)
}

// ErrFileTooLarge is returned by FileReader.ReadFile above its limit.
var ErrFileTooLarge = errors.New("file larger than the export limit")

// ReadFileIn reads the regular file path beneath the directory root (a host
// directory that is the sandbox's view of some tree), refusing symlink and
// ".." escapes, and anything but a regular file: opening a FIFO would block,
// and a device node (a terminal, say) is not the sandbox's to hand out.
func ReadFileIn(root, path string, max int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readBeneath(r, path, max)
}

// readBeneath reads the regular file path beneath the open root r.
func readBeneath(r *os.Root, path string, max int64) ([]byte, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if rel == "" {
		rel = "."
	}
	st, err := r.Stat(rel)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpened(f, st, path, max)
}

// readOpened reads f, opened for path after a stat that gave st, if it is
// still that regular file and not a proc or sys file.
func readOpened(f *os.File, st os.FileInfo, path string, max int64) ([]byte, error) {
	if fst, err := f.Stat(); err != nil || !fst.Mode().IsRegular() || !os.SameFile(st, fst) {
		return nil, fmt.Errorf("%s: %w (changed while opening)", path, ErrNotRegular)
	}
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &fs); err != nil || fs.Type == 0x9fa0 || fs.Type == 0x62656572 {
		// procfs and sysfs files describe the host and kernel, not the sandbox's work
		return nil, fmt.Errorf("%s: %w (a proc or sys file)", path, ErrNotRegular)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s (limit %d bytes)", ErrFileTooLarge, path, max)
	}
	return data, nil
}

// ReadFileNoLinks is ReadFileAs refusing every symbolic link beneath root,
// not only those leading out of it, and ".." (openat2 with RESOLVE_BENEATH
// and RESOLVE_NO_SYMLINKS). For a root that is a host directory bound into
// a sandbox with other mounts inside it: a link that stays within the host
// directory could lead to what a nested mount hides from the sandbox.
func ReadFileNoLinks(root, path string, max int64, uid, gid int) ([]byte, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	if rel == "" {
		rel = "."
	}
	return readAs(uid, gid, func() ([]byte, error) { return readNoLinks(int(dir.Fd()), rel, path, max) })
}

// ErrLinkInExport refuses an export whose path holds a symbolic link where
// links are not followed (ReadFileNoLinks).
var ErrLinkInExport = errors.New("a symbolic link on the path of the export")

func readNoLinks(dirfd int, rel, path string, max int64) ([]byte, error) {
	open := func(flags uint64) (*os.File, error) {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		switch {
		case errors.Is(err, unix.ELOOP):
			return nil, fmt.Errorf("%s: %w", path, ErrLinkInExport)
		case err != nil:
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	p, err := open(unix.O_PATH)
	if err != nil {
		return nil, err
	}
	st, err := p.Stat()
	p.Close()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	f, err := open(unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpened(f, st, path, max)
}

// ErrNotRegular is returned when an exported path is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// MergeEnv returns base with each "K=V" of the overlays applied in order: a
// later entry replaces an earlier one with the same key, new keys are
// appended. base is not modified.
func MergeEnv(base []string, overlays ...[]string) []string {
	n := len(base)
	for _, o := range overlays {
		n += len(o)
	}
	out := make([]string, 0, n)
	idx := make(map[string]int, n)
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		add(kv)
	}
	for _, o := range overlays {
		for _, kv := range o {
			add(kv)
		}
	}
	return out
}

// ReadFileAs is ReadFileIn performed, when kavach runs as root, with the
// file system identity of uid/gid (fsuid, fsgid, no supplementary groups,
// which also drops the file capabilities) on a thread of its own: kavach
// never reads on a sandbox's behalf what the sandbox's user could not.
// Without root, kavach already is that user's peer and reads as itself.
func ReadFileAs(root, path string, max int64, uid, gid int) ([]byte, error) {
	if os.Geteuid() != 0 {
		return ReadFileIn(root, path, max)
	}
	// The root itself is kavach's to open (it may sit in a private state
	// directory); everything beneath it is resolved as the sandbox user.
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readAs(uid, gid, func() ([]byte, error) { return readBeneath(r, path, max) })
}

// readAs runs read with the file system identity of uid/gid (as root; as
// anyone else, as itself) on a thread of its own.
func readAs(uid, gid int, read func() ([]byte, error)) ([]byte, error) {
	if os.Geteuid() != 0 {
		return read()
	}
	type result struct {
		data []byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // the credentials below are this thread's only
		var out result
		restored, err := asUser(uid, gid, func() { out.data, out.err = read() })
		if err != nil {
			out = result{err: err}
		}
		if restored {
			runtime.UnlockOSThread()
		} // otherwise the thread ends with this goroutine
		res <- out
	}()
	out := <-res
	return out.data, out.err
}

// asUser runs fn on the calling, locked thread with the file system
// identity of uid/gid and no supplementary groups, then restores root's; it
// reports whether the thread's credentials are root's again.
func asUser(uid, gid int, fn func()) (restored bool, err error) {
	groups := make([]uint32, 256)
	n, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0)
	if e != 0 {
		return true, fmt.Errorf("getgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return true, fmt.Errorf("setgroups: %w", e)
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	fn()
	unix.RawSyscall(unix.SYS_SETFSUID, 0, 0, 0)
	unix.RawSyscall(unix.SYS_SETFSGID, 0, 0, 0)
	_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, n, uintptr(unsafe.Pointer(&groups[0])), 0)
	cur, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0) // -1 only reports the current fsuid
	return e == 0 && cur == 0, nil
}
