package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
	"github.com/kavach-sandbox/kavach/policy"
)

// runsc (this build) applies the bundle's seccomp filter (--oci-seccomp)
// only to the container's init and its descendants; processes started
// with "runsc exec" run unfiltered. kavach therefore starts every exec'd
// command in gVisor through a helper: its own binary, bound read-only into
// the container, which loads the same filter and then execs the command.
const (
	helperDir  = "/.kavach"
	helperPath = helperDir + "/kavach-oci-exec" // also the reexec entry name
	filterPath = helperDir + "/seccomp.bpf"
	// helperPrefix starts the helper's own one-line errors.
	helperPrefix = "kavach-oci-exec: "
)

func init() { reexec.Register(helperPath, helperMain) }

// helperMain runs inside the container: load the filter, exec argv[1:].
// Failing to start the command is reported like the runtimes do: one line
// on stderr, exit 127 (not found) or 126 (cannot execute).
func helperMain() {
	if len(os.Args) < 2 {
		helperFail(126, "no command")
	}
	data, err := os.ReadFile(filterPath)
	if err != nil {
		helperFail(126, "read filter: "+err.Error())
	}
	prog, err := seccomp.UnmarshalProgram(data)
	if err != nil {
		helperFail(126, "decode filter: "+err.Error())
	}
	path, err := exec.LookPath(os.Args[1])
	switch {
	case errors.Is(err, fs.ErrPermission):
		helperFail(126, "permission denied: "+os.Args[1])
	case err != nil:
		helperFail(127, "executable file not found: "+os.Args[1])
	}
	goruntime.LockOSThread()
	if err := prog.Load(); err != nil {
		helperFail(126, err.Error())
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	helperFail(126, "permission denied: "+os.Args[1]+": "+err.Error())
}

func helperFail(code int, msg string) {
	fmt.Fprintln(os.Stderr, helperPrefix+msg)
	os.Exit(code)
}

// helperMounts returns the mounts that put the filter and the helper
// binary into the container; prepareHelper fills their sources.
func helperMounts(bundleDir string) ([]specs.Mount, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("seccomp helper: %w", err)
	}
	ro := []string{"bind", "ro", "nosuid", "nodev"}
	return []specs.Mount{
		{Destination: helperDir, Type: "bind", Source: filepath.Join(bundleDir, "kavach"), Options: ro},
		{Destination: helperPath, Type: "bind", Source: self, Options: ro},
	}, nil
}

// prepareHelper writes the compiled filter and the helper's mount point
// into the bundle.
func prepareHelper(bundleDir string, p *policy.Policy) error {
	prog, err := seccomp.Compile(seccomp.Profile(p.Seccomp), p.SeccompAllow)
	if err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	data, err := prog.MarshalBinary()
	if err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	dir := filepath.Join(bundleDir, "kavach")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seccomp.bpf"), data, 0o644); err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kavach-oci-exec"), nil, 0o755); err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	return nil
}
