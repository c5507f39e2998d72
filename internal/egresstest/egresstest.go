// Package egresstest holds what the egress tests of every backend share:
// an event recorder, a loopback upstream and a resolver that maps test
// names to fixed addresses.
package egresstest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/egress"
)

// Recorder keeps the egress events of one sandbox.
type Recorder struct {
	mu     sync.Mutex
	events []egress.Event
}

// Add records an event; it is the sandbox's Egress.OnEvent.
func (r *Recorder) Add(e egress.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Count returns how many events of this kind were recorded.
func (r *Recorder) Count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// Upstream starts a loopback HTTP server, closed when the test ends, that
// answers with body and the Authorization header it received. It returns
// the server's address and port.
func Upstream(t testing.TB, body string) (addr, port string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s auth=%s", body, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	addr = srv.Listener.Addr().String()
	return addr, addr[strings.LastIndexByte(addr, ':')+1:]
}

// TLSUpstream starts a loopback HTTPS server, closed when the test ends,
// whose certificate names example.com and which answers "tls auth=" and the
// Authorization header it received. Each request's header is also sent on
// the returned channel (buffered for n requests). It returns the server,
// for its certificate, and its port.
func TLSUpstream(t testing.TB, n int) (srv *httptest.Server, port string, auth <-chan string) {
	t.Helper()
	seen := make(chan string, n)
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization")
		fmt.Fprintf(w, "tls auth=%s", r.Header.Get("Authorization")) // echoes what it got
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return srv, addr[strings.LastIndexByte(addr, ':')+1:], seen
}

// Resolver resolves the names of the map to their address and fails for
// every other name.
func Resolver(names map[string]string) func(ctx context.Context, host string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := names[host]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
}

// Configure completes e for a test: names resolve through Resolver unless e
// has a resolver, 127.0.0.1 (where Upstream listens) is reachable, and the
// events go to the returned recorder.
func Configure(e *backend.Egress, names map[string]string) *Recorder {
	rec := &Recorder{}
	if e.Resolve == nil {
		e.Resolve = Resolver(names)
	}
	e.AllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e.OnEvent = rec.Add
	return rec
}
