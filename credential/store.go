package credential

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

var (
	// ErrNotFound reports a secret name that is not in the Store.
	ErrNotFound = errors.New("credential: secret not found")
	// ErrDuplicate reports a second secret with the same name.
	ErrDuplicate = errors.New("credential: duplicate secret")
	// ErrEmpty reports a source that produced an empty value.
	ErrEmpty = errors.New("credential: empty secret value")
	// ErrSource reports a source that could not be read.
	ErrSource = errors.New("credential: cannot read secret")
	// ErrSyntax reports a malformed --secret or --secret-from specification.
	ErrSyntax = errors.New("credential: invalid secret specification")
	// ErrConflict reports two bindings for the same channel (env var, fd,
	// stdin, or proxy substitution of one secret).
	ErrConflict = errors.New("credential: conflicting secret bindings")
	// ErrClosed reports use of a closed Store.
	ErrClosed = errors.New("credential: store is closed")
)

// Store holds named secrets in memory. It is safe for concurrent use.
type Store struct {
	mu      sync.RWMutex
	secrets map[string]*Secret
	closed  bool
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{secrets: make(map[string]*Secret)}
}

// Add reads src once and keeps the value under name. A name already in the
// store is ErrDuplicate (checked before src is read), an empty value
// ErrEmpty. Errors name the secret and its source, never the value.
func (s *Store) Add(ctx context.Context, name string, src Source) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.checkFree(name); err != nil {
		return err
	}
	v, err := src.load(ctx)
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.freeLocked(name); err != nil {
		clear(v)
		return err
	}
	s.secrets[name] = newSecret(name, v)
	return nil
}

func (s *Store) checkFree(name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.freeLocked(name)
}

func (s *Store) freeLocked(name string) error {
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.secrets[name]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicate, name)
	}
	return nil
}

// Get returns the secret called name, or ErrNotFound.
func (s *Store) Get(name string) (*Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	sec, ok := s.secrets[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return sec, nil
}

// Names returns the names of all secrets, sorted.
func (s *Store) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.secrets))
	for n := range s.secrets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Values returns a copy of every value by name, for the gate's and the
// audit log's always-redact lists. The caller should clear the copies when
// done with them.
func (s *Store) Values() map[string][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]byte, len(s.secrets))
	for n, sec := range s.secrets {
		out[n] = append([]byte(nil), sec.Bytes()...)
	}
	return out
}

// Close zeroes every value and empties the store. Later calls to Add, Get
// and Plan return ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range s.secrets {
		sec.Zero()
	}
	clear(s.secrets)
	s.closed = true
}
