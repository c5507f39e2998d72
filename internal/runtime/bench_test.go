package runtime

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// BenchmarkBareExec is the baseline: fork/exec of /bin/true on the host.
func BenchmarkBareExec(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCold measures create → exec(true) → destroy per runtime.
func BenchmarkCold(b *testing.B) {
	for _, k := range kinds {
		b.Run(string(k), func(b *testing.B) {
			d := benchDriver(b, k)
			ctx := context.Background()
			var i int
			for b.Loop() {
				i++
				inst, err := d.Create(ctx, &backend.Spec{ID: fmt.Sprintf("bench-cold-%d", i), Policy: testPolicy(), Env: testEnv})
				if err != nil {
					b.Fatal(err)
				}
				benchTrue(b, inst)
				if err := inst.Destroy(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdStart measures create → exec(true) only: what a caller waits
// for when destruction happens off the critical path (e.g. in a pool).
func BenchmarkColdStart(b *testing.B) {
	for _, k := range kinds {
		b.Run(string(k), func(b *testing.B) {
			d := benchDriver(b, k)
			ctx := context.Background()
			var insts []backend.Instance
			var i int
			for b.Loop() {
				i++
				inst, err := d.Create(ctx, &backend.Spec{ID: fmt.Sprintf("bench-start-%d", i), Policy: testPolicy(), Env: testEnv})
				if err != nil {
					b.Fatal(err)
				}
				benchTrue(b, inst)
				insts = append(insts, inst)
			}
			b.StopTimer()
			for _, inst := range insts {
				_ = inst.Destroy(ctx)
			}
		})
	}
}

// BenchmarkWarmExec measures exec(true) into a running container.
func BenchmarkWarmExec(b *testing.B) {
	for _, k := range kinds {
		b.Run(string(k), func(b *testing.B) {
			d := benchDriver(b, k)
			ctx := context.Background()
			inst, err := d.Create(ctx, &backend.Spec{ID: "bench-warm", Policy: testPolicy(), Env: testEnv})
			if err != nil {
				b.Fatal(err)
			}
			defer inst.Destroy(ctx)
			for b.Loop() {
				benchTrue(b, inst)
			}
		})
	}
}

func benchDriver(b *testing.B, k Kind) *Driver {
	b.Helper()
	if _, err := Detect(context.Background(), k); err != nil {
		b.Skipf("%s: %v", k, err)
	}
	if k == Runsc {
		return NewDriver(backend.GVisor, k)
	}
	return NewDriver(backend.OCI, k)
}

func benchTrue(b *testing.B, inst backend.Instance) {
	out, err := inst.Exec(context.Background(), &backend.ExecRequest{Argv: []string{"true"}, Timeout: 10 * time.Second, MaxOutput: 1024})
	if err != nil || out.ExitCode != 0 {
		b.Fatalf("exec true: %v %+v", err, out)
	}
}

// BenchmarkWarmExecNoSeccomp isolates the cost of the in-container seccomp
// helper under gVisor: exec(true) with the seccomp profile off.
func BenchmarkWarmExecNoSeccomp(b *testing.B) {
	d := benchDriver(b, Runsc)
	ctx := context.Background()
	p := testPolicy()
	p.Seccomp = policy.SeccompOff
	inst, err := d.Create(ctx, &backend.Spec{ID: "bench-warm-noseccomp", Policy: p, Env: testEnv})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Destroy(ctx)
	for b.Loop() {
		benchTrue(b, inst)
	}
}

// BenchmarkColdStartAllowlist measures create → exec(true) of an allowlist
// sandbox per runtime: the proxy's listener is opened inside the
// container's namespace before Create returns (under gVisor the sandbox
// runs with --network=host in its own namespace).
func BenchmarkColdStartAllowlist(b *testing.B) {
	for _, k := range kinds {
		b.Run(string(k), func(b *testing.B) {
			d := benchDriver(b, k)
			ctx := context.Background()
			p := testPolicy()
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{"example.com"}}
			var insts []backend.Instance
			var i int
			for b.Loop() {
				i++
				inst, err := d.Create(ctx, &backend.Spec{ID: fmt.Sprintf("bench-allow-%d", i), Policy: p, Env: testEnv})
				if err != nil {
					b.Fatal(err)
				}
				benchTrue(b, inst)
				insts = append(insts, inst)
			}
			b.StopTimer()
			for _, inst := range insts {
				_ = inst.Destroy(ctx)
			}
		})
	}
}

// BenchmarkProxiedRequest measures one curl inside a warm sandbox to an
// allowed loopback upstream through the egress proxy.
func BenchmarkProxiedRequest(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, k := range kinds {
		b.Run(string(k), func(b *testing.B) {
			d := benchDriver(b, k)
			ctx := context.Background()
			p := testPolicy()
			p.Network = policy.Network{Mode: policy.NetworkAllowlist, Allow: []string{fmt.Sprintf("api.bench.test:%d", port)}}
			e := backend.Egress{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
				Resolve: func(context.Context, string) ([]netip.Addr, error) {
					return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
				}}
			inst, err := d.Create(ctx, &backend.Spec{ID: "bench-proxied", Policy: p, Env: testEnv, Egress: e})
			if err != nil {
				b.Fatal(err)
			}
			defer inst.Destroy(ctx)
			req := &backend.ExecRequest{Argv: []string{"curl", "-sS", "-m", "5", fmt.Sprintf("http://api.bench.test:%d/", port)},
				Timeout: 10 * time.Second, MaxOutput: 1024}
			for b.Loop() {
				out, err := inst.Exec(ctx, req)
				if err != nil || out.ExitCode != 0 || string(out.Stdout) != "ok" {
					b.Fatalf("curl: %v %+v", err, out)
				}
			}
		})
	}
}
