package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/gate"
	"github.com/kavach-sandbox/kavach/policy"
)

type runFlags struct {
	backend, policy, seccomp, memory, maxOutput, workdir, hostname string
	network, noNetwork, stdin, asJSON, verbose, bestEffort         bool
	cpus                                                           float64
	pids                                                           int64
	timeout                                                        time.Duration
	ro, rw, env, secrets, secretFrom, allowHosts, exports          []string
	gate, audit, quarantineDir                                     string
	minScore                                                       int
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARG...]",
		Short: "Run one command in a sandbox and pass its output through the gate",
		Long: `Run one command in a sandbox. The argv is passed as given (no re-splitting);
use sh -c '...' for shell syntax. The default backend is process and the
default policy is strict; flags override single fields of the policy.`,
		Example: `  kavach run -- python3 -c 'print(6*7)'
  kavach run -p basic --memory 256M --json -- sh -c 'echo hi; exit 3'
  kavach run --rw ./out:/work/out -- sh -c 'date > /work/out/stamp'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRun(cmd, &f, args) },
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVarP(&f.backend, "backend", "b", string(kavach.DefaultBackend), "backend: "+backendList())
	fl.StringVarP(&f.policy, "policy", "p", "strict", "preset (minimal, basic, strict) or policy file (JSON/YAML)")
	fl.StringVar(&f.seccomp, "seccomp", "", "seccomp profile: off, basic, strict")
	fl.BoolVar(&f.network, "network", false, "unrestricted host networking, no egress proxy (the score loses the network-off modifier); see --allow-host")
	fl.BoolVar(&f.noNetwork, "no-network", false, "no network (loopback only)")
	fl.StringArrayVar(&f.allowHosts, "allow-host", nil, "allow HOST[:PORT] (or *.HOST) through the egress proxy; repeatable, turns on allowlist mode")
	fl.StringVar(&f.memory, "memory", "", "memory limit, e.g. 512M")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit in cores, e.g. 0.5")
	fl.Int64Var(&f.pids, "pids", 0, "limit on processes and threads")
	fl.DurationVar(&f.timeout, "timeout", policy.DefaultTimeout, "wall-clock timeout")
	fl.StringArrayVar(&f.ro, "ro", nil, "bind host PATH[:DEST] read-only (repeatable)")
	fl.StringArrayVar(&f.rw, "rw", nil, "bind host PATH[:DEST] read-write (repeatable)")
	fl.StringVar(&f.workdir, "workdir", "", "working directory inside the sandbox (default /work)")
	fl.StringVar(&f.hostname, "hostname", "", "hostname inside the sandbox")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set K=V in the sandbox (repeatable)")
	fl.BoolVarP(&f.stdin, "stdin", "i", false, "pass kavach's standard input to the command")
	fl.BoolVar(&f.asJSON, "json", false, "print the structured result as JSON instead of the output")
	fl.StringVar(&f.maxOutput, "max-output", "", "cap on each of stdout and stderr, e.g. 1M")
	fl.IntVar(&f.minScore, "min-score", 0, "refuse to run below this effective score (0-100)")
	fl.BoolVar(&f.bestEffort, "best-effort", false, "run with a lower score when a layer cannot be applied")
	fl.StringVar(&f.gate, "gate", "on", "externalization gate: on or off")
	fl.StringVar(&f.quarantineDir, "quarantine-dir", "", "where quarantined output is kept (default: the user's state dir)")
	fl.StringVar(&f.audit, "audit", "", "append every event to this audit chain (key: KAVACH_AUDIT_KEY)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "inject a secret: NAME=env:VAR | NAME=stdin | NAME=fd:N | NAME=proxy:HOST[,HOST] (placeholder inside, swapped by the egress proxy); repeatable")
	fl.StringArrayVar(&f.secretFrom, "secret-from", nil, "where a secret's value comes from: NAME=env:HOSTVAR | NAME=file:PATH")
	fl.StringArrayVar(&f.exports, "export", nil, "after the command, copy SANDBOX_PATH[:HOST_PATH] out through the gate (repeatable)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "after the output, print backend, score, status and time to stderr")
	return cmd
}

func backendList() string {
	names := backend.Names()
	s := make([]string, 0, len(names)+1)
	for _, n := range names {
		s = append(s, string(n))
	}
	return strings.Join(append(s, "auto"), ", ")
}

func runRun(cmd *cobra.Command, f *runFlags, argv []string) error {
	stderr := cmd.ErrOrStderr()
	cfg, done, err := buildConfig(cmd, f)
	defer done()
	if err != nil {
		return runError(cmd, f, knownBackend(f.backend), err)
	}
	var opts []kavach.ExecOption
	if f.stdin {
		opts = append(opts, kavach.WithStdin(cmd.InOrStdin()))
	}
	res, exported, ran, err := runAndExport(cmd.Context(), cfg, argv, f.exports, opts)
	if err != nil {
		if ran == "" {
			ran = knownBackend(string(cfg.Backend))
		}
		return runError(cmd, f, ran, err)
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		if err := writeJSON(out, res); err != nil {
			return exitWith(exitKavachError, err)
		}
	} else {
		if err := passOutput(out, stderr, res); err != nil {
			return exitWith(exitKavachError, err)
		}
		if passed := res.Stderr; passed != "" && !strings.HasSuffix(passed, "\n") && !withheld(res) {
			// kavach's own lines below start on a line of their own.
			stderr = &newlineFirst{w: stderr}
		}
		if note := truncationNote(res, cmd.Flags(), f.maxOutput, &cfg); note != "" {
			fmt.Fprintln(stderr, "kavach:", note)
		}
	}
	code := res.ExitStatus()
	switch kept, failed := writeExports(stderr, exported); {
	case code != 0:
	case failed:
		code = exitKavachError
	case kept:
		code = exitGate
	}
	if f.verbose {
		fmt.Fprintf(stderr, "kavach: %s sandbox %s, score %s, %s (exit %d) in %.1f ms\n",
			res.Backend, res.ID, res.Score, res.Status, code, res.DurationMS)
	}
	if res.Status == kavach.StatusError && res.Error != "" {
		// With --json too: stdout holds the result, stderr the error.
		fmt.Fprintln(stderr, "kavach:", res.Error)
	}
	if code != 0 {
		return exitWith(code, nil)
	}
	return nil
}

// runError is a kavach error (exit 125) of `kavach run` after its flags
// were parsed. With --json, stdout also gets a JSON object saying so, with
// the backend when it is known; the error itself goes to stderr as always.
// An interruption is reported by run (exit 128+N), also as JSON here.
func runError(cmd *cobra.Command, f *runFlags, backendName string, err error) error {
	msg := err.Error()
	if interruptSignal(cmd.Context()) != 0 {
		msg = "interrupted"
	}
	if f.asJSON {
		_ = writeJSON(cmd.OutOrStdout(), struct {
			Status  kavach.Status `json:"status"`
			Error   string        `json:"error"`
			Backend string        `json:"backend,omitempty"`
		}{kavach.StatusError, msg, backendName})
	}
	return exitWith(exitKavachError, err)
}

// knownBackend is the backend a name stands for, or "" when that is not
// known before a sandbox exists (auto) or the name is not a backend.
func knownBackend(name string) string {
	n, err := backend.ParseName(name)
	if err != nil || n == backend.Auto {
		return ""
	}
	return string(n)
}

// truncationNote says which streams were cut at the output cap, naming the
// cap as --max-output gave it or as the policy sets it.
func truncationNote(res *kavach.Result, fl *pflag.FlagSet, given string, cfg *kavach.Config) string {
	var streams []string
	if res.StdoutTruncated {
		streams = append(streams, "stdout")
	}
	if res.StderrTruncated {
		streams = append(streams, "stderr")
	}
	if len(streams) == 0 {
		return ""
	}
	limit := strings.TrimSpace(given)
	if !fl.Changed("max-output") || limit == "" {
		limit = policy.Size(cfg.Policy.EffectiveMaxOutput()).String()
	}
	return fmt.Sprintf("%s truncated at %s (--max-output)", strings.Join(streams, " and "), limit)
}

type export struct {
	dest exportTarget
	file *kavach.Exported
}

// runAndExport runs the command in a fresh sandbox, then copies the
// requested files out through the gate before destroying it.
// It also returns the backend the sandbox ran on ("" when none was created).
func runAndExport(ctx context.Context, cfg kavach.Config, argv, specs []string, opts []kavach.ExecOption) (*kavach.Result, []export, string, error) {
	targets, err := parseExports(specs)
	if err != nil {
		return nil, nil, "", err
	}
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		return nil, nil, "", err
	}
	defer sb.Destroy(context.WithoutCancel(ctx))
	ran := string(sb.Backend())
	if err := sb.Start(ctx); err != nil {
		return nil, nil, ran, err
	}
	res, err := sb.Exec(ctx, argv, opts...)
	if err != nil {
		return nil, nil, ran, err
	}
	var out []export
	for _, t := range targets {
		f, err := sb.Export(ctx, t.src)
		if err != nil {
			return nil, nil, ran, fmt.Errorf("--export %s: %w", t.src, err)
		}
		out = append(out, export{dest: t, file: f})
	}
	return res, out, ran, nil
}

// writeExports writes the files the gate let through (new files, mode
// 0600, see exportTarget.write) and reports whether the gate withheld any
// and whether writing any failed.
func writeExports(stderr io.Writer, files []export) (withheld, failed bool) {
	for _, e := range files {
		switch v := e.file.Gate.Verdict; {
		case v == gate.VerdictBlock:
			fmt.Fprintf(stderr, "kavach: %s: blocked by the gate\n", e.file.Path)
			withheld = true
		case v == gate.VerdictQuarantine:
			fmt.Fprintf(stderr, "kavach: %s: quarantined as %s\n", e.file.Path, e.file.Gate.QuarantineID)
			withheld = true
		default:
			if err := e.dest.write(e.file.Data); err != nil {
				fmt.Fprintf(stderr, "kavach: %s: %v\n", e.file.Path, err)
				failed = true
			}
		}
	}
	return withheld, failed
}

// newlineFirst writes a newline before the first write to w: it follows
// command output that did not end a line.
type newlineFirst struct {
	w    io.Writer
	done bool
}

func (n *newlineFirst) Write(p []byte) (int, error) {
	if !n.done && len(p) > 0 {
		n.done = true
		if _, err := io.WriteString(n.w, "\n"); err != nil {
			return 0, err
		}
	}
	return n.w.Write(p)
}

// withheld reports whether the gate kept the output back.
func withheld(res *kavach.Result) bool {
	v := res.Gate.Verdict
	return v == gate.VerdictBlock || v == gate.VerdictQuarantine
}

// passOutput writes the command's output, unless the gate withheld it.
func passOutput(stdout, stderr io.Writer, res *kavach.Result) error {
	if v := res.Gate.Verdict; withheld(res) {
		msg := "output blocked by the gate"
		if v == gate.VerdictQuarantine {
			msg = "output quarantined as " + res.Gate.QuarantineID + " (kavach quarantine show " + res.Gate.QuarantineID + ")"
		}
		_, err := fmt.Fprintln(stderr, "kavach:", msg)
		return err
	}
	if _, err := io.WriteString(stdout, res.Stdout); err != nil {
		return err
	}
	_, err := io.WriteString(stderr, res.Stderr)
	return err
}

// buildConfig turns the flags into a configuration: the policy flag gives
// the base, every other flag that was set overrides one field.
func buildConfig(cmd *cobra.Command, f *runFlags) (kavach.Config, func(), error) {
	b, err := flagsBuilder(cmd.Flags(), f)
	if err != nil {
		return kavach.Config{}, func() {}, err
	}
	done, err := addBoundary(cmd.Context(), b, f)
	if err != nil {
		return kavach.Config{}, done, err
	}
	cfg, err := b.Build()
	return cfg, done, err
}

func flagsBuilder(fl *pflag.FlagSet, f *runFlags) (*kavach.Builder, error) {
	base, err := policy.Resolve(f.policy)
	if err != nil {
		return nil, err
	}
	b := kavach.NewConfig().Backend(backend.Name(f.backend)).Policy(base).MinScore(f.minScore)
	if fl.Changed("seccomp") {
		b.Seccomp(f.seccomp)
	}
	if f.network && f.noNetwork {
		return nil, fmt.Errorf("--network and --no-network are exclusive")
	}
	if f.network && len(f.allowHosts) > 0 {
		return nil, fmt.Errorf("--network and --allow-host are exclusive: --allow-host already turns the network on, through the egress proxy")
	}
	if fl.Changed("network") || fl.Changed("no-network") {
		b.Network(f.network && !f.noNetwork)
	}
	if len(f.allowHosts) > 0 {
		b.AllowHosts(f.allowHosts...)
	}
	if fl.Changed("memory") {
		sz, err := policy.ParseSize(f.memory)
		if err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		b.Memory(int64(sz))
	}
	if fl.Changed("cpus") {
		b.CPUs(f.cpus)
	}
	if fl.Changed("pids") {
		b.Pids(f.pids)
	}
	if fl.Changed("timeout") || base.Limits.Timeout == 0 {
		b.Timeout(f.timeout)
	}
	if fl.Changed("max-output") {
		sz, err := policy.ParseSize(f.maxOutput)
		if err != nil {
			return nil, fmt.Errorf("--max-output: %w", err)
		}
		b.MaxOutput(int64(sz))
	}
	if err := addMounts(b, f); err != nil {
		return nil, err
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want K=V", kv)
		}
		b.Env(k, v)
	}
	if fl.Changed("workdir") {
		b.Workdir(f.workdir)
	}
	if fl.Changed("hostname") {
		b.Hostname(f.hostname)
	}
	if f.bestEffort {
		b.BestEffort(true)
	}
	return b, nil
}

func addMounts(b *kavach.Builder, f *runFlags) error {
	for _, m := range []struct {
		specs []string
		mode  policy.Access
		flag  string
	}{{f.ro, policy.ReadOnly, "--ro"}, {f.rw, policy.ReadWrite, "--rw"}} {
		for _, spec := range m.specs {
			src, dest, _ := strings.Cut(spec, ":")
			abs, err := absPath(src)
			if err != nil {
				return fmt.Errorf("%s %q: %w", m.flag, spec, err)
			}
			b.Mount(abs, dest, m.mode)
		}
	}
	return nil
}

func absPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	// The kernel's idea of the current directory, not $PWD: a directory
	// reached through a symbolic link would put the link in the path, and
	// mount sources with links in them are refused.
	wd, err := unix.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}
