package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/kavach-sandbox/kavach"
	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

func newBenchCmd() *cobra.Command {
	var n, conc int
	var dur time.Duration
	var backendName string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Compare sandbox start latency with bare exec, bubblewrap and runc, in one interleaved run",
		Long: `Runs /bin/true, interleaved, N times each way: bare fork/exec; kavach's process
backend with the strict policy, cold (create, exec, destroy), claimed from a warm
pool (claim and exec; the destroy that follows is not timed), and as one more
exec in a running sandbox; and, as peers, bubblewrap and a plain runc run of a
minimal bundle (when installed). Prints medians and ratios,
then sustained throughput at the given concurrency and kavach's memory per
running sandbox. Absolute times on a busy machine are noisy: read the ratios.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := backend.ParseName(backendName)
			if err != nil {
				return exitWith(exitKavachError, err)
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), name, n, conc, dur)
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 200, "iterations per variant")
	cmd.Flags().StringVarP(&backendName, "backend", "b", string(kavach.DefaultBackend), "backend to measure")
	cmd.Flags().IntVar(&conc, "concurrency", 8, "concurrency of the throughput run")
	cmd.Flags().DurationVar(&dur, "duration", 3*time.Second, "duration of the throughput run")
	return cmd
}

// variant is one way of running /bin/true. run returns an optional
// cleanup that is performed outside the timed section.
type variant struct {
	name string
	run  func(context.Context) (func(), error)
	ns   []float64
}

func runBench(ctx context.Context, w io.Writer, name backend.Name, n, conc int, dur time.Duration) error {
	cfg, err := kavach.NewConfig().Backend(name).Policy(policy.Strict()).Build()
	if err != nil {
		return exitWith(exitKavachError, err)
	}
	pool, err := kavach.NewPool(ctx, cfg, 4)
	if err != nil {
		return exitWith(exitKavachError, err)
	}
	defer pool.Close()
	warm, err := kavach.New(ctx, cfg)
	if err != nil {
		return exitWith(exitKavachError, err)
	}
	defer warm.Destroy(context.WithoutCancel(ctx))
	if err := warm.Start(ctx); err != nil {
		return exitWith(exitKavachError, err)
	}
	vs := benchVariants(cfg, pool, warm)
	for _, v := range vs[1:4] {
		v.name = strings.Replace(v.name, "kavach", "kavach "+string(name), 1)
	}
	if rv, cleanup, err := runcVariant(ctx); err == nil {
		defer cleanup()
		vs = append(vs, rv)
	} else {
		fmt.Fprintf(w, "(runc variant skipped: %v)\n", err)
	}
	if wv, cleanup, err := wasmVariant(ctx); err == nil {
		defer cleanup()
		vs = append(vs, wv)
	} else {
		fmt.Fprintf(w, "(wasm variant skipped: %v)\n", err)
	}
	for i := 0; i < n; i++ {
		for _, v := range vs {
			t0 := time.Now()
			cleanup, err := v.run(ctx)
			if err != nil {
				return exitWith(exitKavachError, fmt.Errorf("%s: %w", v.name, err))
			}
			v.ns = append(v.ns, float64(time.Since(t0).Nanoseconds()))
			if cleanup != nil {
				cleanup()
			}
		}
	}
	printLatency(w, vs)
	return printThroughput(ctx, w, cfg, conc, dur)
}

func benchVariants(cfg kavach.Config, pool *kavach.Pool, warm *kavach.Sandbox) []*variant {
	argv := []string{"/bin/true"}
	plain := func(f func(context.Context) error) func(context.Context) (func(), error) {
		return func(ctx context.Context) (func(), error) { return nil, f(ctx) }
	}
	vs := []*variant{
		{name: "bare fork/exec", run: plain(func(ctx context.Context) error { return exec.CommandContext(ctx, "/bin/true").Run() })},
		{name: "kavach strict: new+exec+destroy", run: plain(func(ctx context.Context) error { return okRun(kavach.Run(ctx, cfg, argv)) })},
		{name: "kavach strict: pool claim+exec", run: func(ctx context.Context) (func(), error) {
			sb, err := pool.Claim(ctx)
			if err != nil {
				return nil, err
			}
			destroy := func() { _ = sb.Destroy(context.WithoutCancel(ctx)) }
			if err := okRun(sb.Exec(ctx, argv)); err != nil {
				destroy()
				return nil, err
			}
			return destroy, nil
		}},
		{name: "kavach strict: exec in a sandbox", run: plain(func(ctx context.Context) error { return okRun(warm.Exec(ctx, argv)) })},
	}
	if bwrap, err := exec.LookPath("bwrap"); err == nil {
		vs = append(vs, &variant{name: bwrapVariant, run: plain(func(ctx context.Context) error {
			return exec.CommandContext(ctx, bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
				"--dev", "/dev", "--proc", "/proc", "/bin/true").Run()
		})})
	}
	return vs
}

func okRun(res *kavach.Result, err error) error {
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("exit %d: %s %s", res.ExitCode, res.Error, res.Stderr)
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func printLatency(w io.Writer, vs []*variant) {
	base := median(vs[0].ns)
	peers := []struct {
		name, col string
		m         float64
	}{{name: bwrapVariant, col: "x bwrap"}, {name: runcVariantName, col: "x runc"}}
	fmt.Fprintf(w, "%-44s %10s %10s", "variant (/bin/true)", "median", "x bare")
	for i := range peers {
		for _, v := range vs {
			if v.name == peers[i].name {
				peers[i].m = median(v.ns)
			}
		}
		fmt.Fprintf(w, " %10s", peers[i].col)
	}
	fmt.Fprintln(w)
	for _, v := range vs {
		m := median(v.ns)
		fmt.Fprintf(w, "%-44s %8.2fms %10.2f", v.name, m/1e6, m/base)
		for _, p := range peers {
			r := "-"
			if p.m > 0 {
				r = fmt.Sprintf("%.2f", m/p.m)
			}
			fmt.Fprintf(w, " %10s", r)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "kavach overhead over bare exec: %.2f ms cold, %.2f ms from the pool, %.2f ms in a running sandbox\n",
		(median(vs[1].ns)-base)/1e6, (median(vs[2].ns)-base)/1e6, (median(vs[3].ns)-base)/1e6)
}

// Names of the peer variants, whose medians the ratio columns divide by.
const (
	bwrapVariant    = "bwrap --unshare-all"
	runcVariantName = "runc run (minimal bundle, no kavach)"
)

// printThroughput runs create→exec→destroy at the given concurrency and
// measures kavach's heap per concurrently running sandbox.
func printThroughput(ctx context.Context, w io.Writer, cfg kavach.Config, conc int, dur time.Duration) error {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := okRun(kavach.Run(ctx, cfg, []string{"/bin/true"})); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return exitWith(exitKavachError, err)
	}
	fmt.Fprintf(w, "throughput at concurrency %d: %.0f sandboxes/s\n", conc, float64(done.Load())/dur.Seconds())
	const live = 16
	runtime.GC()
	var before, during runtime.MemStats
	runtime.ReadMemStats(&before)
	started := make(chan struct{}, live)
	var mwg sync.WaitGroup
	for i := 0; i < live; i++ {
		mwg.Add(1)
		go func() {
			defer mwg.Done()
			started <- struct{}{}
			_, _ = kavach.Run(ctx, cfg, []string{"sleep", "1"})
		}()
	}
	for i := 0; i < live; i++ {
		<-started
	}
	time.Sleep(500 * time.Millisecond)
	runtime.ReadMemStats(&during)
	mwg.Wait()
	fmt.Fprintf(w, "kavach heap per running sandbox: %.1f KiB (%d sandboxes)\n",
		float64(int64(during.HeapInuse)-int64(before.HeapInuse))/live/1024, live)
	return nil
}

// tinyWASI is the smallest WASI command module: an empty _start and one
// page of exported memory (it exits 0).
var tinyWASI = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: func() -> ()
	0x03, 0x02, 0x01, 0x00, // function section
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: min 1 page
	0x07, 0x13, 0x02, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export memory
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
}

// wasmVariant runs the tiny module in a running wasm sandbox, for a side by
// side figure with the process backend.
func wasmVariant(ctx context.Context) (*variant, func(), error) {
	cfg, err := kavach.NewConfig().Backend(kavach.WASM).Build()
	if err != nil {
		return nil, nil, err
	}
	sb, err := kavach.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "kavach-bench-")
	if err != nil {
		_ = sb.Destroy(ctx)
		return nil, nil, err
	}
	cleanup := func() { _ = sb.Destroy(context.WithoutCancel(ctx)); os.RemoveAll(dir) }
	mod := filepath.Join(dir, "tiny.wasm")
	if err := os.WriteFile(mod, tinyWASI, 0o644); err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := sb.Start(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	return &variant{name: "kavach wasm: exec tiny module in a sandbox", run: func(ctx context.Context) (func(), error) {
		return nil, okRun(sb.Exec(ctx, []string{mod}))
	}}, cleanup, nil
}

// runcVariant is a peer: `runc run` of a minimal bundle (runc's default
// spec — new pid, mount, net, ipc and uts namespaces — over a read-only root
// holding the host's /usr), without kavach. Each run creates, starts and
// deletes a container. A trial run decides whether the peer takes part. The
// cleanup removes the bundle, runc's state directory and the cgroup parent
// every run used.
func runcVariant(ctx context.Context) (*variant, func(), error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "kavach-bench-runc-")
	if err != nil {
		return nil, nil, err
	}
	cgroup := fmt.Sprintf("kavach-bench-%d", os.Getpid())
	cleanup := func() {
		_ = os.RemoveAll(dir)
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroup))
		for _, d := range append(dirs, filepath.Join("/sys/fs/cgroup", cgroup)) {
			_ = os.Remove(d)
		}
	}
	bundle, state := filepath.Join(dir, "bundle"), filepath.Join(dir, "state")
	if err := writeRuncBundle(ctx, runc, bundle, "/"+cgroup); err != nil {
		cleanup()
		return nil, nil, err
	}
	var seq atomic.Int64
	run := func(ctx context.Context) (func(), error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Not killed with ctx: a runc killed before it saved its state
		// leaves cgroups that nothing could delete. /bin/true is quick.
		id := fmt.Sprintf("%s-%d", cgroup, seq.Add(1))
		out, err := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id).CombinedOutput()
		if err != nil {
			_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
			return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil, nil
	}
	if _, err := run(ctx); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("trial run: %w", err)
	}
	return &variant{name: runcVariantName, run: run}, cleanup, nil
}

// writeRuncBundle writes runc's default spec (rootless when not root),
// changed to run /bin/true without a terminal in a read-only root holding
// the host's /usr, in the cgroup cgroupsPath (as root).
func writeRuncBundle(ctx context.Context, runc, bundle, cgroupsPath string) error {
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	args := []string{"spec", "--bundle", bundle}
	if os.Geteuid() != 0 {
		args = append(args, "--rootless")
	}
	if out, err := exec.CommandContext(ctx, runc, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %w: %s", err, strings.TrimSpace(string(out)))
	}
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("runc spec: %w", err)
	}
	if err := writeRuncRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		return err
	}
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	proc, _ := spec["process"].(map[string]any)
	if proc == nil {
		return errors.New("runc spec: no process")
	}
	proc["terminal"], proc["args"] = false, []string{"/bin/true"}
	if linux, _ := spec["linux"].(map[string]any); linux != nil && os.Geteuid() == 0 {
		linux["cgroupsPath"] = cgroupsPath
	}
	mounts, _ := spec["mounts"].([]any)
	spec["mounts"] = append(mounts, map[string]any{"destination": "/usr", "type": "bind", "source": "/usr",
		"options": []string{"rbind", "ro", "nosuid", "nodev"}})
	if data, err = json.Marshal(spec); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// writeRuncRootfs makes a root holding /usr (bound by the spec) and the
// merged-/usr links to it.
func writeRuncRootfs(root string) error {
	if err := os.MkdirAll(filepath.Join(root, "usr"), 0o755); err != nil {
		return err
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			return err
		}
	}
	return nil
}
