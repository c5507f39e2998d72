package credential

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestPipeForDeliversToChild(t *testing.T) {
	for _, size := range []int{1, 4096, 3 << 20} { // the last is far beyond the pipe buffer
		value := bytes.Repeat([]byte("k3y!"), size/4+1)[:size]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := PipeFor(ctx, value)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "cat <&3")
		cmd.ExtraFiles = []*os.File{r}
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if !bytes.Equal(out.Bytes(), value) {
			t.Fatalf("size %d: child read %d bytes, want %d", size, out.Len(), size)
		}
	}
}

func TestPipeForCopiesValue(t *testing.T) {
	value := []byte(testValue)
	r, err := PipeFor(context.Background(), value)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	clear(value) // the caller may wipe its buffer at once
	got, err := io.ReadAll(r)
	if err != nil || string(got) != testValue {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestPipeForStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := PipeFor(ctx, make([]byte, 8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cancel()
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, r)
		done <- n
	}()
	select {
	case n := <-done:
		if n >= 8<<20 {
			t.Fatalf("writer did not stop: %d bytes", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader never saw EOF after cancel")
	}
	if _, err := PipeFor(ctx, []byte("x")); err == nil {
		t.Fatal("PipeFor with a done context succeeded")
	}
}

// TestInjectionReachesChildOnlyThroughItsChannel runs a real child with a
// full injection and checks where each value shows up.
func TestInjectionReachesChildOnlyThroughItsChannel(t *testing.T) {
	s := NewStore()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, v := range map[string]string{"E": "env-s3cret", "I": "stdin-s3cret", "F": "fd-s3cret", "P": "proxy-s3cret"} {
		if err := s.Add(ctx, name, FromValue([]byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	inj, err := s.Plan(mustParse(t, "E=env:TOKEN", "I=stdin", "F=fd:5", "P=proxy:api.example"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := inj.ExtraFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	script := `echo "env:"; env; echo "args:"; tr '\0' ' ' </proc/$$/cmdline; echo; ` +
		`echo "stdin:"; cat; echo; echo "fd5:"; cat <&5; echo; ` +
		`for fd in 3 4 5; do if [ -e /proc/$$/fd/$fd ]; then echo "fd $fd open"; fi; done`
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, inj.Env...)
	cmd.Stdin = bytes.NewReader(inj.Stdin)
	cmd.ExtraFiles = files
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	closeAll(files)
	err = cmd.Wait()
	inj.Zero()
	if err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	sections := map[string]string{}
	var cur string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasSuffix(line, ":") && !strings.Contains(line, " ") {
			cur = strings.TrimSuffix(line, ":")
			continue
		}
		sections[cur] += line + "\n"
	}
	want := map[string]string{"env": "TOKEN=env-s3cret", "stdin": "stdin-s3cret", "fd5": "fd-s3cret"}
	for sec, v := range want {
		if !strings.Contains(sections[sec], v) {
			t.Errorf("%s does not carry %q:\n%s", sec, v, out.String())
		}
	}
	for _, v := range []string{"env-s3cret", "stdin-s3cret", "fd-s3cret", "proxy-s3cret"} {
		if n := strings.Count(out.String(), v); n > 1 {
			t.Errorf("%q reached the child through more than one channel:\n%s", v, out.String())
		}
	}
	if strings.Contains(out.String(), "proxy-s3cret") {
		t.Error("proxy secret reached the child")
	}
	if !strings.Contains(out.String(), "fd 5 open") {
		t.Errorf("fd probe broken: fd 5 not reported open:\n%s", out.String())
	}
	if strings.Contains(sections["args"], "s3cret") || strings.Contains(out.String(), "fd 3 open") || strings.Contains(out.String(), "fd 4 open") {
		t.Errorf("leak through argv or unexpected open fds:\n%s", out.String())
	}
}
