package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyEnv is the environment variable holding the audit HMAC key. Its bytes,
// exactly as set, are the key.
const KeyEnv = "KAVACH_AUDIT_KEY"

// maxKeyFileSize bounds how much of a key file is read.
const maxKeyFileSize = 64 << 10

var (
	// ErrNoKey reports that no audit key was configured. kavach never falls
	// back to a built-in key.
	ErrNoKey = errors.New("audit: no key configured (set " + KeyEnv + " or give a key file)")
	// ErrKeyPermissions reports a key file readable or writable by group or others.
	ErrKeyPermissions = errors.New("audit: key file must be mode 0600 or stricter")
)

// KeyFromEnv returns the bytes of $KAVACH_AUDIT_KEY, or ErrNoKey if it is
// unset or empty.
func KeyFromEnv() ([]byte, error) {
	v, ok := os.LookupEnv(KeyEnv)
	if !ok || v == "" {
		return nil, ErrNoKey
	}
	return []byte(v), nil
}

// KeyFromFile reads a key from a regular file whose mode grants nothing to
// group or others (0600, 0400 or stricter). One trailing "\n" or "\r\n" is
// removed so that `echo KEY > file` works; all other bytes are the key. An
// empty key is ErrNoKey.
func KeyFromFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o", ErrKeyPermissions, path, perm)
	}
	key, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read key file: %w", err)
	}
	if len(key) > maxKeyFileSize {
		return nil, fmt.Errorf("audit: key file %s is larger than %d bytes", path, maxKeyFileSize)
	}
	if bytes.HasSuffix(key, []byte("\r\n")) {
		key = key[:len(key)-2]
	} else {
		key = bytes.TrimSuffix(key, []byte("\n"))
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: key file %s is empty", ErrNoKey, path)
	}
	return key, nil
}

// LoadKey returns the key from $KAVACH_AUDIT_KEY if it is set and non-empty,
// otherwise from keyFile. With neither it returns ErrNoKey.
func LoadKey(keyFile string) ([]byte, error) {
	key, err := KeyFromEnv()
	if err == nil {
		return key, nil
	}
	if keyFile == "" {
		return nil, ErrNoKey
	}
	return KeyFromFile(keyFile)
}
