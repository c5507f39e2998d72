package lifecycle_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/lifecycle"
)

// allowed is SPEC §5's list of transitions, and no others.
var allowed = map[[2]lifecycle.State]bool{
	{lifecycle.Created, lifecycle.Running}:   true,
	{lifecycle.Created, lifecycle.Destroyed}: true,
	{lifecycle.Running, lifecycle.Paused}:    true,
	{lifecycle.Running, lifecycle.Stopped}:   true,
	{lifecycle.Running, lifecycle.Destroyed}: true,
	{lifecycle.Paused, lifecycle.Running}:    true,
	{lifecycle.Paused, lifecycle.Stopped}:    true,
	{lifecycle.Paused, lifecycle.Destroyed}:  true,
	{lifecycle.Stopped, lifecycle.Destroyed}: true,
}

func TestStateNames(t *testing.T) {
	want := []string{"created", "running", "paused", "stopped", "destroyed"}
	states := lifecycle.States()
	if len(states) != len(want) {
		t.Fatalf("States() = %v", states)
	}
	for i, s := range states {
		if s.String() != want[i] {
			t.Errorf("state %d = %q, want %q", i, s, want[i])
		}
		if b, _ := s.MarshalText(); string(b) != want[i] {
			t.Errorf("MarshalText = %q", b)
		}
	}
	if s := lifecycle.State(9).String(); s != "state(9)" {
		t.Errorf("State(9) = %q", s)
	}
}

// TestAllPairs checks all 25 (from, to) pairs, through CanTransition, Check
// and FSM.Transition.
func TestAllPairs(t *testing.T) {
	n := 0
	for _, from := range lifecycle.States() {
		for _, to := range lifecycle.States() {
			n++
			want := allowed[[2]lifecycle.State{from, to}]
			if got := lifecycle.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
			err := lifecycle.Check(from, to)
			checkTransitionErr(t, err, from, to, want)

			m := fsmIn(t, from)
			prev, err := m.Transition(to, nil)
			checkTransitionErr(t, err, from, to, want)
			if prev != from {
				t.Errorf("Transition returned previous state %s, want %s", prev, from)
			}
			wantState := from
			if want {
				wantState = to
			}
			if m.State() != wantState {
				t.Errorf("%s → %s: state is %s, want %s", from, to, m.State(), wantState)
			}
		}
	}
	if n != 25 || len(allowed) != 9 {
		t.Fatalf("%d pairs, %d allowed", n, len(allowed))
	}
	for from := range 256 {
		for to := range 256 {
			if (from >= 5 || to >= 5) && lifecycle.CanTransition(lifecycle.State(from), lifecycle.State(to)) {
				t.Fatalf("out-of-range transition %d → %d allowed", from, to)
			}
		}
	}
}

func checkTransitionErr(t *testing.T, err error, from, to lifecycle.State, ok bool) {
	t.Helper()
	if ok {
		if err != nil {
			t.Errorf("%s → %s: unexpected error %v", from, to, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s → %s: no error", from, to)
		return
	}
	if !errors.Is(err, lifecycle.ErrTransition) {
		t.Errorf("%s → %s: %v does not wrap ErrTransition", from, to, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, from.String()) || !strings.Contains(msg, to.String()) {
		t.Errorf("error %q does not name both %s and %s", msg, from, to)
	}
	var te *lifecycle.TransitionError
	if !errors.As(err, &te) || te.From != from || te.To != to {
		t.Errorf("error %v: TransitionError %+v", err, te)
	}
}

// fsmIn returns a machine driven to state s through allowed transitions.
func fsmIn(t *testing.T, s lifecycle.State) *lifecycle.FSM {
	t.Helper()
	path := map[lifecycle.State][]lifecycle.State{
		lifecycle.Created:   nil,
		lifecycle.Running:   {lifecycle.Running},
		lifecycle.Paused:    {lifecycle.Running, lifecycle.Paused},
		lifecycle.Stopped:   {lifecycle.Running, lifecycle.Stopped},
		lifecycle.Destroyed: {lifecycle.Destroyed},
	}[s]
	m := &lifecycle.FSM{}
	for _, st := range path {
		if _, err := m.Transition(st, nil); err != nil {
			t.Fatal(err)
		}
	}
	if m.State() != s {
		t.Fatalf("could not reach %s", s)
	}
	return m
}

func TestTransitionDoFails(t *testing.T) {
	m := fsmIn(t, lifecycle.Running)
	boom := errors.New("freezer failed")
	var sawFrom lifecycle.State = 99
	prev, err := m.Transition(lifecycle.Paused, func(from lifecycle.State) error { sawFrom = from; return boom })
	if !errors.Is(err, boom) || prev != lifecycle.Running || sawFrom != lifecycle.Running {
		t.Fatalf("Transition = %s, %v (do saw %s)", prev, err, sawFrom)
	}
	if m.State() != lifecycle.Running {
		t.Fatalf("state after failed do = %s, want running", m.State())
	}
	// do is not called for a forbidden transition.
	called := false
	if _, err := m.Transition(lifecycle.Created, func(lifecycle.State) error { called = true; return nil }); err == nil || called {
		t.Fatalf("forbidden transition: err %v, do called %v", err, called)
	}
	if _, err := m.Transition(lifecycle.Paused, func(lifecycle.State) error { return nil }); err != nil || m.State() != lifecycle.Paused {
		t.Fatalf("pause: %v, state %s", err, m.State())
	}
}

func TestExpect(t *testing.T) {
	m := fsmIn(t, lifecycle.Paused)
	err := m.Expect(lifecycle.Running)
	if !errors.Is(err, lifecycle.ErrWrongState) || !strings.Contains(err.Error(), "paused") || !strings.Contains(err.Error(), "running") {
		t.Fatalf("Expect = %v", err)
	}
	if err := m.Expect(lifecycle.Paused); err != nil {
		t.Fatal(err)
	}
}

func TestFSMConcurrent(t *testing.T) {
	m := fsmIn(t, lifecycle.Running)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Go(func() {
			if _, err := m.Transition(lifecycle.Stopped, nil); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 || m.State() != lifecycle.Stopped {
		t.Fatalf("%d goroutines moved running → stopped", wins)
	}
}

func TestDispatcherOrder(t *testing.T) {
	var d lifecycle.Dispatcher
	var got []string
	for _, name := range []string{"a", "b", "c"} {
		d.Add(func(e lifecycle.Event) { got = append(got, name+":"+e.To) })
	}
	d.Add(nil) // ignored
	if d.Len() != 3 {
		t.Fatalf("Len = %d", d.Len())
	}
	for _, to := range []string{"running", "paused", "running", "stopped"} {
		d.Emit(lifecycle.Event{Type: lifecycle.EventTransition, To: to})
	}
	want := "a:running b:running c:running a:paused b:paused c:paused a:running b:running c:running a:stopped b:stopped c:stopped"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("order:\n got %s\nwant %s", s, want)
	}
	if d.Dropped() != 0 {
		t.Fatalf("Dropped = %d", d.Dropped())
	}
}

func TestDispatcherSlowHook(t *testing.T) {
	d := lifecycle.Dispatcher{Timeout: 50 * time.Millisecond}
	release := make(chan struct{})
	var mu sync.Mutex
	var slow, fast []string
	d.Add(func(e lifecycle.Event) {
		mu.Lock()
		slow = append(slow, e.To)
		mu.Unlock()
		<-release
	})
	d.Add(func(e lifecycle.Event) {
		mu.Lock()
		fast = append(fast, e.To)
		mu.Unlock()
	})

	start := time.Now()
	d.Emit(lifecycle.Event{To: "1"})
	if el := time.Since(start); el < 40*time.Millisecond || el > time.Second {
		t.Fatalf("first Emit took %v, want about the 50ms timeout", el)
	}
	start = time.Now()
	d.Emit(lifecycle.Event{To: "2"}) // slow hook still busy: dropped for it
	d.Emit(lifecycle.Event{To: "3"})
	if el := time.Since(start); el > 40*time.Millisecond {
		t.Fatalf("Emit while a hook is stuck took %v", el)
	}
	if got := d.Dropped(); got != 2 {
		t.Fatalf("Dropped = %d, want 2", got)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for {
		d.Emit(lifecycle.Event{To: "4"})
		mu.Lock()
		n := len(slow)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(slow) != 2 || slow[0] != "1" || slow[1] != "4" {
		t.Fatalf("slow hook saw %v, want [1 4]", slow)
	}
	if len(fast) < 4 || strings.Join(fast[:4], "") != "1234" {
		t.Fatalf("fast hook saw %v", fast)
	}
}

func TestDispatcherPanickingHook(t *testing.T) {
	var d lifecycle.Dispatcher
	var after []lifecycle.EventType
	d.Add(func(lifecycle.Event) { panic("hook bug") })
	d.Add(func(e lifecycle.Event) { after = append(after, e.Type) })
	d.Emit(lifecycle.Event{Type: lifecycle.EventExecStart})
	d.Emit(lifecycle.Event{Type: lifecycle.EventExecEnd})
	if len(after) != 2 || after[0] != lifecycle.EventExecStart || after[1] != lifecycle.EventExecEnd {
		t.Fatalf("hook after the panicking one saw %v", after)
	}
	if d.Dropped() != 0 {
		t.Fatalf("Dropped = %d", d.Dropped())
	}
}

// BenchmarkFSMCheck checks all 25 pairs of states per op and reports the
// cost of one check as ns/check. It fails if the table stops having exactly
// the 9 transitions of SPEC §5.
func BenchmarkFSMCheck(b *testing.B) {
	var pairs [25][2]lifecycle.State
	for i := range pairs {
		pairs[i] = [2]lifecycle.State{lifecycle.State(i / 5), lifecycle.State(i % 5)}
	}
	bad := 0
	for i := 0; i < b.N; i++ {
		n := 0
		for j := 0; j < len(pairs); j += 5 {
			p := pairs[j : j+5 : j+5]
			n += b2i(lifecycle.CanTransition(p[0][0], p[0][1])) + b2i(lifecycle.CanTransition(p[1][0], p[1][1])) +
				b2i(lifecycle.CanTransition(p[2][0], p[2][1])) + b2i(lifecycle.CanTransition(p[3][0], p[3][1])) +
				b2i(lifecycle.CanTransition(p[4][0], p[4][1]))
		}
		if n != 9 {
			bad++
		}
	}
	if bad > 0 {
		b.Fatalf("%d sweeps did not find exactly 9 allowed transitions", bad)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pairs)), "ns/check")
}

func b2i(ok bool) int {
	if ok {
		return 1
	}
	return 0
}

func BenchmarkFSMTransition(b *testing.B) {
	var m lifecycle.FSM
	_, _ = m.Transition(lifecycle.Running, nil)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = m.Transition(lifecycle.Paused, nil)
		_, _ = m.Transition(lifecycle.Running, nil)
	}
}

// TestDispatcherConcurrentEmitters checks that a slow hook does not
// serialise the emitters: four goroutines (four sandboxes sharing a global
// hook) each wait for their own call only.
func TestDispatcherConcurrentEmitters(t *testing.T) {
	var d lifecycle.Dispatcher
	const slow = 300 * time.Millisecond
	d.Add(func(lifecycle.Event) { time.Sleep(slow) })
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { d.Emit(lifecycle.Event{Type: lifecycle.EventExecEnd}) })
	}
	wg.Wait()
	if el := time.Since(start); el >= 3*slow {
		t.Fatalf("4 concurrent emits through a %v hook took %v: delivery is serialised", slow, el)
	}
	if d.Dropped() != 0 {
		t.Fatalf("Dropped = %d", d.Dropped())
	}
}

// TestDispatcherReentrantHook checks that a hook may cause events itself
// (as a hook that pauses its sandbox does): the nested events are delivered
// at once, to it too, not after the hook timeout.
func TestDispatcherReentrantHook(t *testing.T) {
	d := lifecycle.Dispatcher{Timeout: 5 * time.Second}
	var mu sync.Mutex
	var seen []string
	d.Add(func(e lifecycle.Event) {
		mu.Lock()
		seen = append(seen, e.To)
		mu.Unlock()
		if e.To == "outer" {
			d.Emit(lifecycle.Event{To: "nested"})
		}
	})
	start := time.Now()
	d.Emit(lifecycle.Event{To: "outer"})
	if el := time.Since(start); el > time.Second {
		t.Fatalf("re-entrant emit took %v", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, " ") != "outer nested" || d.Dropped() != 0 {
		t.Fatalf("hook saw %v, dropped %d", seen, d.Dropped())
	}
}
