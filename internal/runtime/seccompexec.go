package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/internal/reexec"
	"github.com/kavach-sandbox/kavach/internal/seccomp"
	"github.com/kavach-sandbox/kavach/policy"
)

// runsc (this build) applies the bundle's seccomp filter (--oci-seccomp)
// only to the container's init and its descendants; processes started
// with "runsc exec" run unfiltered. kavach therefore starts every exec'd
// command in gVisor through a loader of the same filter: the tiny static
// one (seccomploader.go) when that is all the exec needs, else this helper:
// kavach's own binary, bound read-only into every gVisor container, which
// loads the filter (and installs secret descriptors, see secretfds.go) and
// then execs the command.
const (
	helperDir  = "/.kavach"
	helperPath = helperDir + "/kavach-oci-exec" // also the reexec entry name
	filterPath = helperDir + "/seccomp.bpf"
	// helperPrefix starts the helper's own one-line errors.
	helperPrefix = "kavach-oci-exec: "
	// helperSeccompPrefix starts its errors about the filter: the command
	// did not run, and the exec is reported as failed (ErrCommand).
	helperSeccompPrefix = helperPrefix + "seccomp: "
)

func init() { reexec.Register(helperPath, helperMain) }

// helperMain runs inside the container. os.Args[1] is its options, comma
// separated: "seccomp" (load the filter) and "fd=N:LEN" (a secret
// descriptor, see secretfds.go), or "-"; os.Args[2:] is the command.
// Failing to start the command is reported like the runtimes do: one line
// on stderr, exit 127 (not found) or 126 (cannot execute). It uses raw
// system calls for files so that Go's poller never opens descriptors that
// a secret's number could collide with.
func helperMain() {
	if len(os.Args) < 3 {
		helperFail(126, "no command")
	}
	var prog *seccomp.Program
	var secrets []helperFD
	for _, opt := range strings.Split(os.Args[1], ",") {
		switch {
		case opt == "-":
		case opt == "seccomp":
			prog = loadFilter()
		case strings.HasPrefix(opt, "fd="):
			s, err := parseHelperFD(opt)
			if err != nil {
				helperFail(126, err.Error())
			}
			secrets = append(secrets, s)
		default:
			helperFail(126, "unknown option "+opt)
		}
	}
	if err := installSecrets(secrets); err != nil {
		helperFail(126, "secret descriptors: "+err.Error())
	}
	argv := os.Args[2:]
	path, err := exec.LookPath(argv[0])
	switch {
	case errors.Is(err, fs.ErrPermission):
		helperFail(126, "permission denied: "+argv[0])
	case err != nil:
		helperFail(127, "executable file not found: "+argv[0])
	}
	goruntime.LockOSThread()
	if prog != nil {
		if err := prog.Load(); err != nil {
			helperFail(126, err.Error())
		}
	}
	err = syscall.Exec(path, argv, os.Environ())
	helperFail(126, "permission denied: "+argv[0]+": "+err.Error())
}

// loadFilter reads and decodes the compiled filter.
func loadFilter() *seccomp.Program {
	data, err := readRaw(filterPath)
	if err != nil {
		helperFail(126, "seccomp: read filter: "+err.Error())
	}
	prog, err := seccomp.UnmarshalProgram(data)
	if err != nil {
		helperFail(126, "seccomp: decode filter: "+err.Error())
	}
	return prog
}

// readRaw reads a small file with plain system calls.
func readRaw(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// helperArgs is the argv of a command started through the helper.
func helperArgs(filtered bool, secretOpts, argv []string) []string {
	opts := secretOpts
	if filtered {
		opts = append([]string{"seccomp"}, opts...)
	}
	o := "-"
	if len(opts) > 0 {
		o = strings.Join(opts, ",")
	}
	return append([]string{helperPath, o}, argv...)
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

// prepareHelper writes the helper's mount point into the bundle and, when
// filtered, the compiled filter and (where supported) the tiny loader.
func prepareHelper(bundleDir string, p *policy.Policy, filtered bool) error {
	dir := filepath.Join(bundleDir, "kavach")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	if filtered {
		prog, err := seccomp.Compile(seccomp.Profile(p.Seccomp.String()), p.SeccompAllow)
		if err != nil {
			return fmt.Errorf("seccomp helper: %w", err)
		}
		data, err := prog.MarshalBinary()
		if err != nil {
			return fmt.Errorf("seccomp helper: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "seccomp.bpf"), data, 0o644); err != nil {
			return fmt.Errorf("seccomp helper: %w", err)
		}
		if loaderSupported() {
			if err := writeLoader(dir, prog); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kavach-oci-exec"), nil, 0o755); err != nil {
		return fmt.Errorf("seccomp helper: %w", err)
	}
	return nil
}
