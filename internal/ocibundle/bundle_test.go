package ocibundle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/kavach-sandbox/kavach/policy"
)

func create(t *testing.T, p policy.Policy, mod func(*Config)) *Bundle {
	t.Helper()
	c := &Config{Dir: filepath.Join(t.TempDir(), "b"), Policy: &p, Args: []string{"/bin/true"}, Env: []string{"A=1"}}
	if mod != nil {
		mod(c)
	}
	b, err := Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Remove(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func hasNS(s *specs.Spec, ns specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == ns })
}

func TestStrictSpec(t *testing.T) {
	b := create(t, policy.Strict(), nil)
	var s specs.Spec
	data, err := os.ReadFile(filepath.Join(b.Dir, "config.json"))
	if err != nil || json.Unmarshal(data, &s) != nil {
		t.Fatalf("config.json: %v", err)
	}
	if s.Version != OCIVersion || !s.Root.Readonly || s.Hostname != policy.DefaultHostname {
		t.Errorf("version %q readonly %v hostname %q", s.Version, s.Root.Readonly, s.Hostname)
	}
	pr := s.Process
	if !pr.NoNewPrivileges || pr.User.UID != UID || len(pr.Capabilities.Bounding) != 0 || len(pr.Capabilities.Permitted) != 0 {
		t.Errorf("process privileges: %+v", pr)
	}
	if !slices.Equal(pr.Env, []string{"A=1"}) {
		t.Errorf("env %v", pr.Env)
	}
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.NetworkNamespace,
		specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace} {
		if !hasNS(&s, ns) {
			t.Errorf("namespace %s missing", ns)
		}
	}
	if hasNS(&s, specs.UserNamespace) {
		t.Errorf("user namespace without rootless")
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 || *r.Pids.Limit != 64 || *r.CPU.Quota != 100000 {
		t.Errorf("resources %+v %+v %+v", r.Memory, r.Pids, r.CPU)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked/readonly paths missing")
	}
	fi, err := os.Stat(b.WorkDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("work dir %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(b.RootFS, "etc", "shadow")); !os.IsNotExist(err) {
		t.Errorf("generated /etc has a shadow file")
	}
}

func TestNetworkOnAndRlimitPids(t *testing.T) {
	p := policy.Strict()
	p.Network.Mode = policy.NetworkOn
	b := create(t, p, func(c *Config) { c.PidsAsRlimit = true })
	if hasNS(b.Spec, specs.NetworkNamespace) {
		t.Errorf("network namespace with network on")
	}
	if b.Spec.Linux.Resources.Pids != nil {
		t.Errorf("pids cgroup limit set with PidsAsRlimit")
	}
	if !slices.ContainsFunc(b.Spec.Process.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == "RLIMIT_NPROC" && r.Hard == 64 }) {
		t.Errorf("no RLIMIT_NPROC: %+v", b.Spec.Process.Rlimits)
	}
}

func TestPolicyMountsAndWorkDirOverride(t *testing.T) {
	src := t.TempDir()
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: src, Dest: "/data", Mode: policy.ReadOnly}, {Source: src, Dest: "/work", Mode: policy.ReadWrite}}
	b := create(t, p, nil)
	var data, work *specs.Mount
	for i, m := range b.Spec.Mounts {
		switch m.Destination {
		case "/data":
			data = &b.Spec.Mounts[i]
		case "/work":
			if work != nil {
				t.Errorf("two mounts at /work")
			}
			work = &b.Spec.Mounts[i]
		}
	}
	if data == nil || !slices.Contains(data.Options, "ro") || work == nil || work.Source != src {
		t.Errorf("mounts: data %+v work %+v", data, work)
	}
	if fi, err := os.Stat(filepath.Join(b.RootFS, "data")); err != nil || !fi.IsDir() {
		t.Errorf("mount point /data: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	p := policy.Strict()
	b := create(t, p, nil)
	_, err := Create(&Config{Dir: b.Dir, Policy: &p, Args: []string{"x"}})
	if !errors.Is(err, ErrExists) {
		t.Errorf("existing dir: %v", err)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Errorf("bundle not removed")
	}
}

// TestMountsParentsFirst: a read-only mount listed before a read-write
// mount of its parent is still applied after it, or the parent would
// cover it.
func TestMountsParentsFirst(t *testing.T) {
	src := t.TempDir()
	p := policy.Strict()
	p.Filesystem.Mounts = []policy.Mount{{Source: src, Dest: "/data/guard", Mode: policy.ReadOnly}, {Source: src, Dest: "/data", Mode: policy.ReadWrite}}
	b := create(t, p, nil)
	parent, child := -1, -1
	for i, m := range b.Spec.Mounts {
		switch m.Destination {
		case "/data":
			parent = i
		case "/data/guard":
			child = i
		}
	}
	if parent < 0 || child < parent {
		t.Fatalf("/data at %d, /data/guard at %d: the child must come after its parent", parent, child)
	}
}

// TestWorkFileSystem: as root the work directory is a tmpfs of the policy's
// work size, and Remove (or a failed Create) unmounts it.
func TestWorkFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a work file system of its own needs root")
	}
	p := policy.Strict()
	p.Filesystem.WorkSize = 3 << 20
	b := create(t, p, nil)
	var st unix.Statfs_t
	if err := unix.Statfs(b.WorkDir, &st); err != nil {
		t.Fatal(err)
	}
	if !b.WorkMounted || st.Type != unix.TMPFS_MAGIC || st.Blocks*uint64(st.Bsize) != 3<<20 {
		t.Fatalf("work dir: mounted %v, type %#x, %d bytes", b.WorkMounted, st.Type, st.Blocks*uint64(st.Bsize))
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Fatalf("bundle survived Remove: %v", err)
	}
	// A Create that fails after mounting leaves no mount behind: a mount
	// source that does not exist fails when its mount point is made.
	dir := filepath.Join(t.TempDir(), "bad")
	p.Filesystem.Mounts = []policy.Mount{{Source: "/nonexistent-kavach-source", Dest: "/data", Mode: policy.ReadOnly}}
	if _, err := Create(&Config{Dir: dir, Policy: &p, Args: []string{"/bin/true"}}); err == nil {
		t.Fatal("Create with a missing mount source succeeded")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a failed Create left %s behind: %v", dir, err)
	}
}
