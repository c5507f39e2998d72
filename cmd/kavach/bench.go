package main

import (
	"context"
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
		Short: "Compare sandbox start latency with bare exec and bubblewrap, in one interleaved run",
		Long: `Runs /bin/true, interleaved, N times each way: bare fork/exec; kavach's process
backend with the strict policy, cold (create, exec, destroy), claimed from a warm
pool (claim and exec; the destroy that follows is not timed), and as one more
exec in a running sandbox; and bubblewrap (when installed). Prints medians and ratios,
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
		vs = append(vs, &variant{name: "bwrap --unshare-all", run: plain(func(ctx context.Context) error {
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
	var bwrap float64
	for _, v := range vs {
		if v.name == "bwrap --unshare-all" {
			bwrap = median(v.ns)
		}
	}
	fmt.Fprintf(w, "%-44s %10s %10s %10s\n", "variant (/bin/true)", "median", "x bare", "x bwrap")
	for _, v := range vs {
		m := median(v.ns)
		rb := "-"
		if bwrap > 0 {
			rb = fmt.Sprintf("%.2f", m/bwrap)
		}
		fmt.Fprintf(w, "%-44s %8.2fms %10.2f %10s\n", v.name, m/1e6, m/base, rb)
	}
	fmt.Fprintf(w, "kavach overhead over bare exec: %.2f ms cold, %.2f ms from the pool, %.2f ms in a running sandbox\n",
		(median(vs[1].ns)-base)/1e6, (median(vs[2].ns)-base)/1e6, (median(vs[3].ns)-base)/1e6)
}

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
