package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// newTestStore holds A..D with values "value-A".."value-D".
func newTestStore(t *testing.T) *Store {
	t.Helper()
	s := NewStore()
	t.Cleanup(s.Close)
	for _, n := range []string{"A", "B", "C", "D"} {
		if err := s.Add(context.Background(), n, FromValue([]byte("value-"+n))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestStoreDuplicateAndMissing(t *testing.T) {
	s := newTestStore(t)
	// The duplicate is detected before the source is read: the missing
	// file would otherwise give ErrSource.
	err := s.Add(context.Background(), "A", FromFile(filepath.Join(t.TempDir(), "missing")))
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "A") {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.Get("Z"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Z") {
		t.Fatalf("missing: %v", err)
	}
	if err := s.Add(context.Background(), "bad name", FromValue([]byte("x"))); !errors.Is(err, ErrSyntax) {
		t.Fatalf("bad name: %v", err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"A", "B", "C", "D"}) {
		t.Fatalf("Names = %v", got)
	}
}

func TestStoreValuesAreCopies(t *testing.T) {
	s := newTestStore(t)
	vals := s.Values()
	if len(vals) != 4 || string(vals["B"]) != "value-B" {
		t.Fatalf("Values = %q", vals)
	}
	clear(vals["B"])
	if sec, _ := s.Get("B"); string(sec.Bytes()) != "value-B" {
		t.Fatal("Values shares storage with the store")
	}
}

func TestStoreCloseZeroes(t *testing.T) {
	s := newTestStore(t)
	sec, _ := s.Get("A")
	view := sec.Bytes()
	s.Close()
	if !bytes.Equal(view, make([]byte, len(view))) {
		t.Fatalf("value survives Close: %q", view)
	}
	if _, err := s.Get("A"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := s.Add(context.Background(), "E", FromValue([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if _, err := s.Plan(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Plan after Close: %v", err)
	}
	if len(s.Values()) != 0 {
		t.Fatal("Values after Close")
	}
}

func TestStoreConcurrent(t *testing.T) {
	s := NewStore()
	defer s.Close()
	var wg sync.WaitGroup
	dups := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("S%d", i%16)
			if err := s.Add(context.Background(), name, FromValue([]byte("v"))); err != nil {
				dups <- err
			}
			s.Get(name)
			s.Values()
			s.Plan([]Binding{{Name: name, Method: MethodFD, FD: 3}})
		}(i)
	}
	wg.Wait()
	close(dups)
	n := 0
	for err := range dups {
		if !errors.Is(err, ErrDuplicate) {
			t.Fatal(err)
		}
		n++
	}
	if n != 48 || len(s.Names()) != 16 {
		t.Fatalf("%d duplicates, %d names", n, len(s.Names()))
	}
}

func mustParse(t *testing.T, specs ...string) []Binding {
	t.Helper()
	var bs []Binding
	for _, sp := range specs {
		b, err := ParseBinding(sp)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	return bs
}

// TestPlanChannelsAreSeparate: each method reaches only its own channel.
func TestPlanChannelsAreSeparate(t *testing.T) {
	s := newTestStore(t)
	inj, err := s.Plan(mustParse(t, "A=env:VAR_A", "B=stdin", "C=fd:3", "D=proxy:api.example", "A=env:ALSO_A"))
	if err != nil {
		t.Fatal(err)
	}
	defer inj.Zero()
	if !slices.Equal(inj.Env, []string{"VAR_A=value-A", "ALSO_A=value-A"}) {
		t.Fatalf("Env = %q", inj.Env)
	}
	if string(inj.Stdin) != "value-B" || len(inj.FDs) != 1 || string(inj.FDs[3]) != "value-C" {
		t.Fatalf("Stdin %q, %d FDs", inj.Stdin, len(inj.FDs))
	}
	if len(inj.Proxy) != 1 || inj.Proxy[0].Name != "D" || string(inj.Proxy[0].Value) != "value-D" {
		t.Fatalf("Proxy = %v", inj.Proxy)
	}
	env := strings.Join(inj.Env, "\n")
	for _, v := range []string{"value-B", "value-C", "value-D"} {
		if strings.Contains(env, v) {
			t.Fatalf("%s leaked into the environment", v)
		}
	}
	summary := fmt.Sprintf("%v %+v %#v %s", inj, inj, *inj, inj.Proxy[0])
	js, _ := json.Marshal(inj)
	for _, v := range []string{"value-A", "value-B", "value-C", "value-D"} {
		if strings.Contains(summary+string(js), v) {
			t.Fatalf("printing the injection reveals %s: %s %s", v, summary, js)
		}
	}
	if !strings.Contains(summary, "env:[VAR_A ALSO_A] stdin:true fds:[3] proxy:[D=proxy:api.example]") {
		t.Fatalf("summary = %s", summary)
	}
}

func TestPlanErrors(t *testing.T) {
	s := newTestStore(t)
	cases := []struct {
		name  string
		specs []string
		err   error
		names string
	}{
		{"missing secret", []string{"A=env:X", "NOPE=stdin"}, ErrNotFound, "NOPE"},
		{"env var twice", []string{"A=env:X", "B=env:X"}, ErrConflict, "env var X"},
		{"fd twice", []string{"A=fd:4", "B=fd:4"}, ErrConflict, "fd 4"},
		{"stdin twice", []string{"A=stdin", "B=stdin"}, ErrConflict, "stdin"},
		{"proxy twice", []string{"A=proxy:h", "A=proxy:i"}, ErrConflict, "proxy"},
	}
	for _, tc := range cases {
		inj, err := s.Plan(mustParse(t, tc.specs...))
		if !errors.Is(err, tc.err) || inj != nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%s: %v, %v", tc.name, inj, err)
		}
		if err != nil && strings.Contains(err.Error(), "value-") {
			t.Errorf("%s: error reveals a value: %v", tc.name, err)
		}
	}
	if _, err := s.Plan([]Binding{{Name: "A", Method: MethodFD, FD: 1}}); !errors.Is(err, ErrSyntax) {
		t.Errorf("invalid binding: %v", err)
	}
	inj, err := s.Plan(nil)
	if err != nil || inj.Env != nil || inj.Stdin != nil || inj.FDs != nil {
		t.Errorf("empty plan: %v %v", inj, err)
	}
}

// TestCheckConflicts: the index of the second binding of a channel is
// reported; distinct channels, or one secret on several channels, pass.
func TestCheckConflicts(t *testing.T) {
	cases := []struct {
		specs   []string
		index   int
		channel string
	}{
		{nil, -1, ""},
		{[]string{"A=env:X"}, -1, ""},
		{[]string{"A=env:X", "A=env:Y", "A=fd:3", "A=stdin", "A=proxy:h"}, -1, ""},
		{[]string{"A=env:X", "B=fd:4", "C=env:X"}, 2, "env var X"},
		{[]string{"A=fd:4", "B=env:X", "C=stdin", "D=fd:4"}, 3, "fd 4"},
		{[]string{"A=stdin", "B=stdin"}, 1, "stdin"},
		{[]string{"A=proxy:h", "B=proxy:h", "A=proxy:i"}, 2, "proxy substitution of A"},
		// A proxy binding's placeholder lives in the env var named after the secret.
		{[]string{"GH=proxy:h", "T=env:GH"}, 1, "env var GH"},
		{[]string{"T=env:GH", "GH=proxy:h"}, 1, "env var GH"},
		{[]string{"GH=env", "GH=proxy:h"}, 1, "env var GH"},
	}
	for _, tc := range cases {
		i, err := CheckConflicts(mustParse(t, tc.specs...))
		if i != tc.index || (tc.index < 0) != (err == nil) {
			t.Errorf("%v: index %d, error %v; want index %d", tc.specs, i, err, tc.index)
			continue
		}
		if err != nil && (!errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tc.channel)) {
			t.Errorf("%v: error %v does not wrap ErrConflict naming %q", tc.specs, err, tc.channel)
		}
	}
}

func TestInjectionZero(t *testing.T) {
	s := newTestStore(t)
	inj, err := s.Plan(mustParse(t, "A=env:VAR_A", "B=stdin", "C=fd:3", "D=proxy:h"))
	if err != nil {
		t.Fatal(err)
	}
	env, stdin, fd, proxy := inj.Env[0], inj.Stdin, inj.FDs[3], inj.Proxy[0].Value
	inj.Zero()
	if inj.Env != nil || inj.Stdin != nil || inj.FDs != nil || inj.Proxy != nil {
		t.Fatal("fields not cleared")
	}
	// The Env string shares the wiped buffer: its bytes are zero now.
	if env != string(make([]byte, len("VAR_A=value-A"))) {
		t.Fatalf("env entry not wiped: %q", env)
	}
	for _, b := range [][]byte{stdin, fd, proxy} {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatalf("buffer not wiped: %q", b)
		}
	}
	if sec, _ := s.Get("A"); string(sec.Bytes()) != "value-A" {
		t.Fatal("Zero of an injection wiped the store's value")
	}
}
