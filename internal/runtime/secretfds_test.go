package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-sandbox/kavach/backend"
	"github.com/kavach-sandbox/kavach/policy"
)

// TestSecretFDs: each secret is readable at its number, stdin still
// works after it, and the value is in no environment and no bundle file.
func TestSecretFDs(t *testing.T) {
	secret := "kavach-secret-" + strings.Repeat("x", 70000) // larger than a default pipe buffer
	forEachKind(t, func(t *testing.T, k Kind) {
		for _, seccomp := range []policy.SeccompProfile{policy.SeccompStrict, policy.SeccompOff} {
			p := testPolicy()
			p.Seccomp = seccomp
			c := newContainer(t, k, p)
			req := &backend.ExecRequest{Argv: []string{"sh", "-c",
				`cat <&5 | wc -c; cat <&3; echo; cat; cat /proc/self/environ | tr '\0' '\n' | grep -c kavach-secret; env | grep -c kavach-secret`},
				Files: map[int][]byte{3: []byte("short-one"), 5: []byte(secret)}, Stdin: strings.NewReader("stdin-after"),
				Timeout: 20 * time.Second, MaxOutput: 1 << 16}
			out := runReq(t, c, req)
			want := "70014\nshort-one\nstdin-after0\n0\n"
			if got := string(out.Stdout); got != want {
				t.Errorf("seccomp %s: stdout %q, want %q (stderr %q)", seccomp, got, want, out.Stderr)
			}
			// Numbers the request left out are not secrets: fd 4 reads nothing.
			out = runReq(t, c, &backend.ExecRequest{Argv: []string{"sh", "-c", "cat <&4 2>/dev/null | wc -c; cat <&6"},
				Files: map[int][]byte{6: []byte("six")}, Timeout: 10 * time.Second, MaxOutput: 100})
			if got := string(out.Stdout); got != "0\nsix" {
				t.Errorf("seccomp %s: gap fd: %q %q", seccomp, got, out.Stderr)
			}
			assertNotOnDisk(t, c.bundle.Dir, "kavach-secret-")
		}
	})
}

func TestSecretFDRejected(t *testing.T) {
	forEachKind(t, func(t *testing.T, k Kind) {
		c := newContainer(t, k, testPolicy())
		for _, fd := range []int{0, 1, 2, -1, MaxSecretFD + 1} {
			_, err := c.Exec(t.Context(), &backend.ExecRequest{Argv: []string{"true"}, Files: map[int][]byte{fd: []byte("x")}})
			if !errors.Is(err, ErrSecretFD) {
				t.Errorf("fd %d: %v", fd, err)
			}
		}
	})
}

// assertNotOnDisk fails when any file under dir holds needle.
func assertNotOnDisk(t *testing.T, dir, needle string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if data, _ := os.ReadFile(p); strings.Contains(string(data), needle) {
			t.Errorf("secret written to %s", p)
		}
		return nil
	})
}
