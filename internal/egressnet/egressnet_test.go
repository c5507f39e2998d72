package egressnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// netnsProcess starts a process in a new network namespace with loopback
// up and returns its pid.
func netnsProcess(t *testing.T) int {
	t.Helper()
	return netnsProcessScript(t, "ip link set lo up && echo ready && exec sleep 60")
}

// netnsProcessScript starts sh -c script in a new network namespace; the
// script prints "ready" once set up.
func netnsProcessScript(t *testing.T, script string) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("netns process: %q %v", buf, err)
	}
	return cmd.Process.Pid
}

func TestListenInNetns(t *testing.T) {
	pid := netnsProcess(t)
	before, _ := os.Readlink("/proc/self/ns/net")
	l, err := ListenInNetns("/proc/"+strconv.Itoa(pid)+"/ns/net", [4]byte{127, 0, 0, 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("from-host-side"))
			c.Close()
		}
	}()
	// Reachable inside the namespace...
	got, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-n", "python3", "-c",
		"import socket; s=socket.create_connection(('127.0.0.1', "+strconv.Itoa(port)+"), timeout=3); print(s.recv(100).decode())").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "from-host-side" {
		t.Fatalf("inside the namespace: %q %v", got, err)
	}
	// ...not in kavach's own.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Errorf("listener reachable in the host namespace")
	}
	if after, _ := os.Readlink("/proc/self/ns/net"); after != before {
		t.Errorf("process namespace changed: %s -> %s", before, after)
	}
}

// TestListenInNetnsLoopbackDown: a fresh namespace (loopback down, as
// runsc creates one for its sandbox) gets its loopback brought up, so the
// listener works at 127.0.0.1.
func TestListenInNetnsLoopbackDown(t *testing.T) {
	pid := netnsProcessScript(t, "echo ready && exec sleep 60")
	ns := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	if out, _ := exec.Command("nsenter", "--net="+ns, "ip", "-o", "link", "show", "lo").Output(); !strings.Contains(string(out), "state DOWN") {
		t.Fatalf("loopback not down at start: %q", out)
	}
	l, err := ListenInNetns(ns, [4]byte{127, 0, 0, 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("up"))
			c.Close()
		}
	}()
	got, err := exec.Command("nsenter", "--net="+ns, "python3", "-c",
		"import socket; s=socket.create_connection(('127.0.0.1', "+port+"), timeout=3); print(s.recv(10).decode())").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "up" {
		t.Fatalf("inside the namespace: %q %v", got, err)
	}
}

// TestListenInNetnsRefusesOwn: the caller's own namespace is refused, so a
// sandbox that shares kavach's network can never be handed the proxy as if
// it were confined.
func TestListenInNetnsRefusesOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := ListenInNetns("/proc/self/ns/net", [4]byte{127, 0, 0, 1}, 0)
	if err == nil {
		l.Close()
	}
	if !errors.Is(err, ErrNamespace) || !strings.Contains(fmt.Sprint(err), "own network namespace") {
		t.Fatalf("own namespace: %v", err)
	}
}

func TestListenInNetnsErrors(t *testing.T) {
	if _, err := ListenInNetns("/proc/self/no-such-ns", [4]byte{127, 0, 0, 1}, 0); !errors.Is(err, ErrNamespace) {
		t.Errorf("missing namespace: %v", err)
	}
	// A file that is not a network namespace: setns refuses, the thread is
	// not changed.
	if _, err := ListenInNetns("/proc/self/ns/mnt", [4]byte{127, 0, 0, 1}, 0); !errors.Is(err, ErrNamespace) {
		t.Errorf("wrong namespace type: %v", err)
	}
}

func TestEnvAndCABundle(t *testing.T) {
	env := strings.Join(Env(LoopbackAddr(), false), " ")
	if !strings.Contains(env, "HTTPS_PROXY=http://127.0.0.1:3128") || strings.Contains(env, "SSL_CERT_FILE") {
		t.Errorf("env without CA: %s", env)
	}
	if env := strings.Join(Env(LoopbackAddr(), true), " "); !strings.Contains(env, "SSL_CERT_FILE="+CABundlePath) {
		t.Errorf("env with CA: %s", env)
	}
	dir := t.TempDir()
	p, err := WriteCABundle(dir, []byte("-----BEGIN CERTIFICATE-----\nkavach\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	host, _ := os.ReadFile(HostCABundle)
	if !strings.HasPrefix(string(data), string(host)) || !strings.HasSuffix(string(data), "kavach\n") {
		t.Errorf("bundle does not extend the host's trust store")
	}
}
