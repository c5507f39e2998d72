package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyFromEnv(t *testing.T) {
	t.Setenv(KeyEnv, "raw key bytes\n")
	key, err := KeyFromEnv()
	if err != nil || string(key) != "raw key bytes\n" {
		t.Fatalf("KeyFromEnv = %q, %v", key, err)
	}
	t.Setenv(KeyEnv, "")
	if _, err := KeyFromEnv(); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty env: err = %v, want ErrNoKey", err)
	}
	os.Unsetenv(KeyEnv)
	if _, err := KeyFromEnv(); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unset env: err = %v, want ErrNoKey", err)
	}
}

func writeKeyFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKeyFromFile(t *testing.T) {
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		err     error
	}{
		{"0600", "k3y", 0o600, "k3y", nil},
		{"0400", "k3y", 0o400, "k3y", nil},
		{"newline trimmed once", "k3y\n\n", 0o600, "k3y\n", nil},
		{"crlf trimmed", "k3y\r\n", 0o600, "k3y", nil},
		{"lone cr kept", "k3y\r", 0o600, "k3y\r", nil},
		{"binary", "\x00\xff\x01", 0o600, "\x00\xff\x01", nil},
		{"group readable", "k3y", 0o640, "", ErrKeyPermissions},
		{"world readable", "k3y", 0o604, "", ErrKeyPermissions},
		{"group writable", "k3y", 0o620, "", ErrKeyPermissions},
		{"empty", "", 0o600, "", ErrNoKey},
		{"only newline", "\n", 0o600, "", ErrNoKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key, err := KeyFromFile(writeKeyFile(t, tc.content, tc.mode))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(key, []byte(tc.want)) {
				t.Fatalf("key = %q, %v; want %q", key, err, tc.want)
			}
		})
	}
}

func TestKeyFromFileRejectsOddFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := KeyFromFile(dir); err == nil {
		t.Fatal("a directory was accepted as key file")
	}
	if _, err := KeyFromFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
	big := writeKeyFile(t, string(make([]byte, maxKeyFileSize+1)), 0o600)
	if _, err := KeyFromFile(big); err == nil {
		t.Fatal("oversized key file accepted")
	}
}

func TestLoadKey(t *testing.T) {
	file := writeKeyFile(t, "from-file", 0o600)
	t.Setenv(KeyEnv, "from-env")
	if key, err := LoadKey(file); err != nil || string(key) != "from-env" {
		t.Fatalf("env must win: %q, %v", key, err)
	}
	t.Setenv(KeyEnv, "")
	if key, err := LoadKey(file); err != nil || string(key) != "from-file" {
		t.Fatalf("file fallback: %q, %v", key, err)
	}
	if _, err := LoadKey(""); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: err = %v, want ErrNoKey", err)
	}
	loose := writeKeyFile(t, "k", 0o644)
	if _, err := LoadKey(loose); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("loose file: err = %v, want ErrKeyPermissions", err)
	}
}
