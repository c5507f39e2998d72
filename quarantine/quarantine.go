// Package quarantine keeps sandbox output that the externalization gate
// withheld, until a person approves or rejects it. Nothing stored here can
// be released before an explicit Approve.
//
// Layout under the store directory (0700):
//
//	q-<16 hex>/          one item (0700)
//	    meta.json        metadata (0600), replaced atomically
//	    lock             flock(2) target serialising decisions on the item
//	    payload/0, 1 …   artifact bytes (0600), deleted on Reject
//
// An item appears atomically: Put builds it in a hidden temporary directory
// and renames it into place. Approve, Reject and Release hold the item's
// exclusive lock, so concurrent callers (goroutines or processes) see one
// consistent decision.
package quarantine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"time"

	"github.com/kavach-sandbox/kavach/gate"
)

// Sentinel errors, testable with errors.Is.
var (
	ErrNotFound       = errors.New("quarantine: item not found")
	ErrNotApproved    = errors.New("quarantine: item is not approved")
	ErrAlreadyDecided = errors.New("quarantine: item was already approved or rejected")
	ErrInvalidID      = errors.New("quarantine: invalid item id")
)

// Item statuses.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
	StatusReleased = "released"
)

// Item is the metadata of one quarantined output.
type Item struct {
	ID        string         `json:"id"`
	SandboxID string         `json:"sandbox_id"`
	Created   time.Time      `json:"created"`
	Findings  []gate.Finding `json:"findings"`
	// SHA256 covers all artifacts: for each in name order, the name, a NUL
	// byte, the 8-byte big-endian length and the bytes.
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	Status  string   `json:"status"`
	Streams []string `json:"streams"`
	// Decided is when the item was approved or rejected.
	Decided *time.Time `json:"decided,omitempty"`
}

// record is what meta.json holds: the item plus where each artifact lives.
type record struct {
	Item
	Artifacts []artifact `json:"artifacts"`
}

type artifact struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Store is a quarantine directory. It is safe for concurrent use by
// goroutines and by processes sharing the directory.
type Store struct {
	dir string
}

var idPattern = regexp.MustCompile(`^q-[0-9a-f]{16}$`)

// ValidID reports whether id has the form of an item id (q- and 16 hex
// digits). Any other string is rejected before it touches the filesystem.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// DefaultDir is $KAVACH_STATE_DIR/quarantine, else
// $XDG_STATE_HOME/kavach/quarantine, else ~/.local/state/kavach/quarantine.
func DefaultDir() (string, error) {
	if d := os.Getenv("KAVACH_STATE_DIR"); d != "" {
		return filepath.Join(d, "quarantine"), nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kavach", "quarantine"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("quarantine: default directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "kavach", "quarantine"), nil
}

// Open opens (creating it with mode 0700 if needed) the store at dir. An
// existing directory is tightened to 0700; a symlink or non-directory is
// refused.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("quarantine: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine: create %s: %w", dir, err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("quarantine: open %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("quarantine: %s is not a directory", dir)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("quarantine: restrict %s: %w", dir, err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// Put stores artifacts (stream or file name -> bytes) with the findings
// that caused the quarantine, as a new pending item.
func (s *Store) Put(ctx context.Context, sandboxID string, findings []gate.Finding, artifacts map[string][]byte) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, fmt.Errorf("quarantine: put: %w", err)
	}
	id, err := newID()
	if err != nil {
		return Item{}, err
	}
	tmp, err := os.MkdirTemp(s.dir, ".tmp-"+id+"-")
	if err != nil {
		return Item{}, fmt.Errorf("quarantine: put: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op once renamed
	rec, err := writeItem(ctx, tmp, id, sandboxID, findings, artifacts)
	if err != nil {
		return Item{}, err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, id)); err != nil {
		return Item{}, fmt.Errorf("quarantine: put %s: %w", id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return Item{}, err
	}
	return rec.Item, nil
}

// writeItem fills a fresh item directory and returns its record.
func writeItem(ctx context.Context, dir, id, sandboxID string, findings []gate.Finding, artifacts map[string][]byte) (record, error) {
	if err := os.Chmod(dir, 0o700); err != nil {
		return record{}, fmt.Errorf("quarantine: put: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "payload"), 0o700); err != nil {
		return record{}, fmt.Errorf("quarantine: put: %w", err)
	}
	names := make([]string, 0, len(artifacts))
	for n := range artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	rec := record{Item: Item{ID: id, SandboxID: sandboxID, Created: time.Now().UTC(), Status: StatusPending,
		Findings: append([]gate.Finding{}, findings...), Streams: names}}
	total := sha256.New()
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return record{}, fmt.Errorf("quarantine: put: %w", err)
		}
		data := artifacts[name]
		file := fmt.Sprint(i)
		if err := writeFileSync(filepath.Join(dir, "payload", file), data); err != nil {
			return record{}, err
		}
		sum := sha256.Sum256(data)
		rec.Artifacts = append(rec.Artifacts, artifact{Name: name, File: file, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		rec.Size += int64(len(data))
		total.Write([]byte(name))
		total.Write([]byte{0})
		total.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
		total.Write(data)
	}
	rec.SHA256 = hex.EncodeToString(total.Sum(nil))
	if err := syncDir(filepath.Join(dir, "payload")); err != nil {
		return record{}, err
	}
	if err := writeFileSync(filepath.Join(dir, "lock"), nil); err != nil {
		return record{}, err
	}
	if err := writeMeta(dir, rec); err != nil {
		return record{}, err
	}
	return rec, nil
}

// List returns every item, oldest first.
func (s *Store) List(ctx context.Context) ([]Item, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("quarantine: list: %w", err)
	}
	items := []Item{}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quarantine: list: %w", err)
		}
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		rec, err := readMeta(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, ErrNotFound) {
			continue // rejected and removed concurrently
		}
		if err != nil {
			return nil, err
		}
		items = append(items, rec.Item)
	}
	sort.Slice(items, func(i, j int) bool {
		if !items[i].Created.Equal(items[j].Created) {
			return items[i].Created.Before(items[j].Created)
		}
		return items[i].ID < items[j].ID
	})
	return items, nil
}

// Show returns the metadata of one item; it never reads the payload.
func (s *Store) Show(ctx context.Context, id string) (Item, error) {
	dir, err := s.itemDir(ctx, id)
	if err != nil {
		return Item{}, err
	}
	rec, err := readMeta(dir)
	return rec.Item, err
}

// Approve marks a pending item approved, allowing Release.
func (s *Store) Approve(ctx context.Context, id string) (Item, error) {
	return s.decide(ctx, id, StatusApproved)
}

// Reject marks a pending item rejected and deletes its payload.
func (s *Store) Reject(ctx context.Context, id string) (Item, error) {
	return s.decide(ctx, id, StatusRejected)
}

func (s *Store) decide(ctx context.Context, id, status string) (Item, error) {
	var out Item
	err := s.withLock(ctx, id, func(dir string, rec *record) error {
		if rec.Status != StatusPending {
			return fmt.Errorf("%w: %s is %s", ErrAlreadyDecided, id, rec.Status)
		}
		now := time.Now().UTC()
		rec.Status, rec.Decided = status, &now
		if status == StatusRejected {
			rec.Artifacts = nil
		}
		if err := writeMeta(dir, *rec); err != nil {
			return err
		}
		if status == StatusRejected {
			if err := os.RemoveAll(filepath.Join(dir, "payload")); err != nil {
				return fmt.Errorf("quarantine: reject %s: delete payload: %w", id, err)
			}
		}
		out = rec.Item
		return nil
	})
	return out, err
}

// Release writes the artifact called name of an approved item to w and
// marks the item released. It fails with ErrNotApproved unless the item was
// approved (or already released), and verifies the artifact's checksum
// before writing a single byte.
func (s *Store) Release(ctx context.Context, id, name string, w io.Writer) error {
	return s.withLock(ctx, id, func(dir string, rec *record) error {
		if rec.Status != StatusApproved && rec.Status != StatusReleased {
			return fmt.Errorf("%w: %s is %s", ErrNotApproved, id, rec.Status)
		}
		var art *artifact
		for i := range rec.Artifacts {
			if rec.Artifacts[i].Name == name {
				art = &rec.Artifacts[i]
			}
		}
		if art == nil {
			return fmt.Errorf("%w: %s has no artifact %q", ErrNotFound, id, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, "payload", art.File))
		if err != nil {
			return fmt.Errorf("quarantine: release %s: %w", id, err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != art.SHA256 {
			return fmt.Errorf("quarantine: release %s: artifact %q fails its checksum", id, name)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("quarantine: release %s: %w", id, err)
		}
		if rec.Status == StatusApproved {
			rec.Status = StatusReleased
			return writeMeta(dir, *rec)
		}
		return nil
	})
}

// itemDir validates id and returns the item's directory if it exists.
func (s *Store) itemDir(ctx context.Context, id string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	if !ValidID(id) {
		return "", fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	dir := filepath.Join(s.dir, id)
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return "", fmt.Errorf("quarantine: %s: %w", id, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("quarantine: %s is not a directory", id)
	}
	return dir, nil
}

// withLock runs fn with the item's exclusive lock held and its metadata
// loaded. The lock is released when fn returns.
func (s *Store) withLock(ctx context.Context, id string, fn func(dir string, rec *record) error) error {
	dir, err := s.itemDir(ctx, id)
	if err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("quarantine: lock %s: %w", id, err)
	}
	defer lf.Close()
	if err := flock(ctx, lf); err != nil {
		return fmt.Errorf("quarantine: lock %s: %w", id, err)
	}
	rec, err := readMeta(dir)
	if err != nil {
		return err
	}
	return fn(dir, &rec)
}

// flock takes an exclusive lock, polling so that ctx can cancel the wait.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func readMeta(dir string) (record, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, fmt.Errorf("%w: %s", ErrNotFound, filepath.Base(dir))
	}
	if err != nil {
		return record{}, fmt.Errorf("quarantine: read %s: %w", filepath.Base(dir), err)
	}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return record{}, fmt.Errorf("quarantine: %s: corrupt metadata: %w", filepath.Base(dir), err)
	}
	if rec.ID != filepath.Base(dir) {
		return record{}, fmt.Errorf("quarantine: %s: metadata names item %q", filepath.Base(dir), rec.ID)
	}
	return rec, nil
}

// writeMeta replaces meta.json atomically (write, fsync, rename, fsync dir).
func writeMeta(dir string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: encode metadata: %w", err)
	}
	tmp := filepath.Join(dir, ".meta.json.tmp")
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "meta.json")); err != nil {
		return fmt.Errorf("quarantine: write metadata: %w", err)
	}
	return syncDir(dir)
}

// writeFileSync creates path (0600, failing if it exists as a symlink)
// with data and fsyncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: create %s: %w", filepath.Base(path), err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("quarantine: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("quarantine: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("quarantine: sync %s: %w", dir, err)
	}
	return nil
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("quarantine: random id: %w", err)
	}
	return "q-" + hex.EncodeToString(b[:]), nil
}
