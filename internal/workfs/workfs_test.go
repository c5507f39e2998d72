package workfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSupportedNeedsCapSysAdmin: root without CAP_SYS_ADMIN (root in a
// container, for one), or root of a user namespace that does not own the
// mount namespace, cannot mount and must keep plain directories.
func TestSupportedNeedsCapSysAdmin(t *testing.T) {
	if os.Getenv("WORKFS_PRINT_SUPPORTED") != "" {
		fmt.Printf("supported=%v\n", Supported())
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if os.Geteuid() != 0 || err != nil {
		t.Skip("needs root and setpriv")
	}
	for caps, want := range map[string]string{"": "supported=true", "-sys_admin": "supported=false", "userns": "supported=false"} {
		args := []string{os.Args[0], "-test.run=^TestSupportedNeedsCapSysAdmin$"}
		if caps != "" {
			args = append([]string{"--inh-caps=" + caps, "--bounding-set=" + caps}, args...)
		} else {
			args = append([]string{"--"}, args...)
		}
		cmd := exec.Command(setpriv, args...)
		if caps == "userns" {
			cmd = exec.Command("unshare", "-Ur", os.Args[0], "-test.run=^TestSupportedNeedsCapSysAdmin$")
		}
		cmd.Env = append(os.Environ(), "WORKFS_PRINT_SUPPORTED=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("caps %q: %v\n%s", caps, err, out)
		}
	}
}

// TestInodesBounded: a work file system allows one inode per 8 KiB, so
// empty files cannot pin kernel memory beyond its size.
func TestInodesBounded(t *testing.T) {
	if !Supported() {
		t.Skip("needs root and CAP_SYS_ADMIN")
	}
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Mount(work, 16<<20, 0, 0, 0o755); err != nil { // 2048 inodes
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = RemoveAll(dir, work) })
	n := 0
	for ; n < 4096; n++ {
		f, err := os.Create(filepath.Join(work, fmt.Sprint(n)))
		if err != nil {
			break
		}
		f.Close()
	}
	if n >= 2048 { // the root directory takes one
		t.Fatalf("created %d empty files in a 16 MiB work file system", n)
	}
	if err := RemoveAll(dir, work); err != nil {
		t.Fatal(err)
	}
	if ok, err := MountedAt(work); ok || err != nil {
		t.Fatalf("still mounted after RemoveAll (%v)", err)
	}
}
