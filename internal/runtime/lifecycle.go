package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// State is what the runtime reports about one container.
type State struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// Run creates and starts a container from bundle, detached: its init keeps
// running after Run returns. hostStack makes runsc hand socket calls to the
// host kernel (--network=host) instead of disabling networking: the
// sandbox then uses the bundle's network namespace, a new empty one when
// the bundle asks for one, or the host's when it has none. crun and runc
// take the network from the bundle alone.
//
// A runsc sandbox runs under a reaper (see reaper.go), returned for the
// container to wait for after deleting it; crun and runc return nil.
func (r *Runtime) Run(ctx context.Context, id, bundle string, hostStack bool) (*reaper, error) {
	var global []string
	if r.kind == Runsc {
		global = []string{"--network=none"}
		if hostStack {
			global = []string{"--network=host"}
		}
	}
	// The init inherits the runtime's stdio: give it a file, not a pipe
	// that would keep the runtime's reader waiting for the init to exit.
	log, err := os.Create(filepath.Join(bundle, "runtime.log"))
	if err != nil {
		return nil, fmt.Errorf("%s run: %w", r.kind, err)
	}
	defer log.Close()
	cmd := r.command(global, "run", "--detach", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = log, log
	var rp *reaper
	if r.kind == Runsc {
		rp, err = r.runReaped(ctx, cmd)
	} else if err = r.start(cmd); err == nil {
		err = waitCtx(ctx, cmd)
	}
	if err != nil {
		msg, _ := os.ReadFile(log.Name())
		return rp, fmt.Errorf("%w: %s run: %v: %s", ErrCommand, r.kind, err, lastLine(string(msg)))
	}
	return rp, nil
}

// Exec starts the process described in process (an OCI process JSON,
// passed to the runtime as an inherited descriptor it reads through
// /proc/self/fd, so that it need not exist on disk) in a running container
// with the given standard streams, and returns the started runtime process;
// the caller waits for it. The exit status of the runtime process is the
// payload's. extra become the payload's fds 3, 4, … (--preserve-fds; crun
// and runc only); the process description comes after them, and the
// runtime does not pass it on.
func (r *Runtime) Exec(id string, process *os.File, stdin io.Reader, stdout, stderr io.Writer, extra []*os.File) (*exec.Cmd, error) {
	procPath := "/proc/self/fd/" + strconv.Itoa(3+len(extra))
	args := []string{"exec", "--process", procPath, id}
	if len(extra) > 0 {
		if r.kind == Runsc {
			return nil, fmt.Errorf("%s exec: %w: no --preserve-fds", r.kind, ErrSecretFD)
		}
		args = []string{"exec", "--preserve-fds", strconv.Itoa(len(extra)), "--process", procPath, id}
	}
	cmd := r.command(nil, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipeOnly(stdin), stdout, stderr
	cmd.ExtraFiles = append(slices.Clip(extra), process)
	if err := r.start(cmd); err != nil {
		return nil, fmt.Errorf("%s exec: %w", r.kind, err)
	}
	return cmd, nil
}

// pipeOnly hides a file behind a plain reader, so that os/exec copies it
// into the container through a pipe: a descriptor of the caller's (a
// terminal, a socket, a file open for writing) never reaches the payload,
// which could write to it around the gate.
func pipeOnly(r io.Reader) io.Reader {
	if f, ok := r.(*os.File); ok {
		return struct{ io.Reader }{f}
	}
	return r
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "pause", id)
	return err
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "resume", id)
	return err
}

// KillAll sends SIGKILL to every process of the container, init included.
func (r *Runtime) KillAll(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "kill", "--all", id, "KILL")
	return err
}

// Delete removes the container, killing what still runs in it.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "delete", "--force", id)
	return err
}

// State returns the container's state.
func (r *Runtime) State(ctx context.Context, id string) (State, error) {
	out, err := r.run(ctx, nil, "state", id)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return State{}, fmt.Errorf("%s state %s: %w", r.kind, id, err)
	}
	return s, nil
}

// List returns the ids of the containers under kavach's root.
func (r *Runtime) List(ctx context.Context) ([]string, error) {
	out, err := r.run(ctx, nil, "list", "--quiet")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// Root returns the runtime's state directory.
func (r *Runtime) Root() string { return r.root }
