package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// RepairType is the event type of the entry that Open (or a later Append)
// writes after truncating a torn final line, so that the repair itself is
// recorded in the chain.
const RepairType = "audit.repair"

var (
	// ErrTampered reports an audit file whose chain does not verify.
	ErrTampered = errors.New("audit: chain does not verify")
	// ErrClosed reports use of a closed Log.
	ErrClosed = errors.New("audit: log is closed")
	// ErrTooLarge reports an entry larger than MaxEntrySize.
	ErrTooLarge = errors.New("audit: entry too large")
	// ErrInvalidEntry reports an event type, sandbox id or payload that
	// cannot be recorded (empty type, control characters, invalid UTF-8,
	// a payload that is not a JSON object).
	ErrInvalidEntry = errors.New("audit: invalid entry")
	// ErrFileMode reports an audit file that group or others may write.
	ErrFileMode = errors.New("audit: audit file is writable by group or others")
)

// Options tunes durability. The zero value fsyncs after every append.
type Options struct {
	// SyncEvery lets up to this many appends share one fsync; 0 and 1 mean
	// an fsync after every append. Entries not yet synced are flushed by
	// Sync and Close.
	SyncEvery int
	// NoSync leaves flushing to the kernel; Sync and Close still fsync.
	NoSync bool
}

// Repair describes a torn final line that was truncated away.
type Repair struct {
	// Offset is the file size after the repair (where the torn line began).
	Offset int64 `json:"offset"`
	// Dropped is the number of bytes removed.
	Dropped int64 `json:"dropped_bytes"`
}

// Log appends entries to an audit file. It is safe for concurrent use by
// several goroutines, and several processes may append to the same file: an
// exclusive flock(2) is held around every append and the chain head is
// re-read when another writer has extended the file.
type Log struct {
	mu       sync.Mutex
	f        *os.File
	key      []byte
	opts     Options
	redact   func([]byte) []byte
	size     int64  // file size after the last entry this Log knows about
	next     uint64 // serial of the next entry
	prev     []byte // raw HMAC of the last entry
	unsynced int    // entries written since the last fsync
	repairs  []Repair
	err      error // sticky write/fsync failure
	closed   bool
}

// Open opens or creates (mode 0600) the audit file at path with Options{}.
// See OpenOptions.
func Open(path string, key []byte) (*Log, error) {
	return OpenOptions(path, key, Options{})
}

// OpenOptions opens or creates (mode 0600) the audit file at path. It
// verifies the HMAC of the last entry with key (ErrTampered if it does not
// verify, which includes a wrong key) and resumes the chain after it. A torn
// final line left by a crash is truncated, reported by Repairs and recorded
// as a RepairType entry.
func OpenOptions(path string, key []byte, opts Options) (*Log, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := &Log{f: f, key: bytes.Clone(key), opts: opts, size: -1}
	if err := l.initHead(context.Background()); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// openFile opens path for appending, creating it with mode 0600 (and
// syncing its directory) if needed, and checks its type and mode.
func openFile(path string) (*os.File, error) {
	const flags = os.O_RDWR | os.O_APPEND | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("audit: create %s: %w", path, err)
	}
	if f, err = os.OpenFile(path, flags, 0); err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("audit: %s is not a regular file", path)
	} else if err == nil && fi.Mode().Perm()&0o022 != 0 {
		err = fmt.Errorf("%w: %s has mode %#o", ErrFileMode, path, fi.Mode().Perm())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// syncDir fsyncs a directory so that a newly created entry in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync dir %s: %w", dir, err)
	}
	return nil
}

// initHead loads the chain head under the file lock and records any repair.
func (l *Log) initHead(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.lockFile(ctx); err != nil {
		return err
	}
	defer l.unlockFile()
	return l.refreshHead()
}

// SetRedact installs fn to scrub every JSON string (keys included) and
// number of a payload, and the event type and sandbox id, before they are
// hashed and written. fn must return its input unchanged when there is
// nothing to scrub and must not modify its argument in place. Connect it to
// the credential store, e.g. with NewSecretRedactor(store.Values()).Redact.
func (l *Log) SetRedact(fn func([]byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.redact = fn
}

// Append records one event and returns the entry written. payload must
// marshal to a JSON object (or be nil). With the default Options the entry
// is on stable storage when Append returns.
func (l *Log) Append(ctx context.Context, typ, sandboxID string, payload any) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("audit: append: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return Entry{}, err
	}
	w, err := l.prepare(typ, sandboxID, payload)
	if err != nil {
		return Entry{}, err
	}
	if err := l.lockFile(ctx); err != nil {
		return Entry{}, err
	}
	defer l.unlockFile()
	if err := l.refreshHead(); err != nil {
		return Entry{}, err
	}
	return l.write(w)
}

// usable reports why the Log cannot append, if it cannot.
func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// prepare validates and redacts an event into a wire entry without serial,
// time and MACs.
func (l *Log) prepare(typ, sandboxID string, payload any) (*wireEntry, error) {
	typ, sandboxID = l.scrub(typ), l.scrub(sandboxID)
	if err := checkType(typ); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	if err := checkText("sandbox id", sandboxID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntry, err)
	}
	p, err := encodePayload(payload, l.redact)
	if err != nil {
		return nil, err
	}
	return &wireEntry{Type: typ, SandboxID: sandboxID, Payload: p}, nil
}

// scrub applies the redaction hook to a plain string.
func (l *Log) scrub(s string) string {
	if l.redact == nil || s == "" {
		return s
	}
	return string(l.redact([]byte(s)))
}

// encodePayload marshals payload to canonical compact JSON (the exact bytes
// that will appear in the line) after redaction.
func encodePayload(payload any, redact func([]byte) []byte) (json.RawMessage, error) {
	if payload == nil {
		return nil, nil
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidEntry, err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	if b[0] != '{' {
		return nil, fmt.Errorf("%w: payload must be a JSON object", ErrInvalidEntry)
	}
	if redact != nil {
		b = redactJSON(b, redact)
	}
	// Marshalling a RawMessage compacts and HTML-escapes it exactly as the
	// enclosing line encoding will, so the MAC covers the bytes on disk.
	return json.Marshal(json.RawMessage(b))
}

// write appends w as the next entry. The file lock must be held and the
// head must be current.
func (l *Log) write(w *wireEntry) (Entry, error) {
	w.Serial = l.next
	w.Time = time.Now().UTC().Format(TimeLayout)
	w.Prev = hex.EncodeToString(l.prev)
	mac := computeMAC(l.key, w, l.prev)
	w.HMAC = hex.EncodeToString(mac)
	line, err := encodeLine(w)
	if err != nil {
		return Entry{}, err
	}
	if len(line) > MaxEntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(line), MaxEntrySize)
	}
	if n, err := l.f.Write(line); err != nil {
		return Entry{}, l.fail(fmt.Errorf("audit: write entry %d (%d of %d bytes): %w", w.Serial, n, len(line), err))
	}
	l.size += int64(len(line))
	l.next++
	l.prev = mac
	l.unsynced++
	if !l.opts.NoSync && l.unsynced >= max(1, l.opts.SyncEvery) {
		if err := l.syncLocked(); err != nil {
			return Entry{}, err
		}
	}
	return w.toEntry(), nil
}

// fail makes err sticky: after a failed write or fsync the state of the file
// is unknown, so the Log refuses further appends. A partial line is
// truncated away when possible (a later Open would do the same).
func (l *Log) fail(err error) error {
	if l.size >= 0 {
		_ = l.f.Truncate(l.size)
	}
	l.err = err
	return err
}

// Sync flushes appended entries to stable storage.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncLocked()
}

func (l *Log) syncLocked() error {
	if l.unsynced == 0 {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		l.err = fmt.Errorf("audit: fsync: %w", err)
		return l.err
	}
	l.unsynced = 0
	return nil
}

// Close flushes and closes the file. Closing twice is not an error.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	syncErr := l.syncLocked()
	clear(l.key)
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return syncErr
}

// Head returns the serial and hex HMAC of the last entry this Log knows of
// (0 and the all-zero value for an empty chain). Storing it outside the
// file lets a verifier detect deletion of entries from the end.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1, hex.EncodeToString(l.prev)
}

// Repairs returns the torn tails this Log truncated, oldest first.
func (l *Log) Repairs() []Repair {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Repair(nil), l.repairs...)
}

// lockFile takes the exclusive inter-process lock, waiting until ctx is done.
func (l *Log) lockFile(ctx context.Context) error {
	fd := int(l.f.Fd())
	delay := 100 * time.Microsecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("audit: lock: %w", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("audit: waiting for file lock: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

func (l *Log) unlockFile() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
}

// refreshHead re-reads the chain head if the file changed size since this
// Log last wrote (another process appended, or this is the first load),
// repairing a torn tail. The file lock must be held.
func (l *Log) refreshHead() error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat: %w", err)
	}
	if fi.Size() == l.size {
		return nil
	}
	t, err := readTail(l.f, fi.Size())
	if err != nil {
		return err
	}
	if err := l.loadHead(t); err != nil {
		return err
	}
	if t.torn == 0 {
		return nil
	}
	return l.repair(t)
}

// loadHead verifies the last complete entry of t and resumes after it.
func (l *Log) loadHead(t *tail) error {
	if t.last == nil {
		l.next, l.prev, l.size = FirstSerial, make([]byte, sha256.Size), t.end
		return nil
	}
	w, err := parseLine(t.last)
	if err != nil {
		return fmt.Errorf("%w: last entry: %v", ErrTampered, err)
	}
	prev, _ := decodeMAC(w.Prev) // validated by parseLine
	if w.Serial == FirstSerial && w.Prev != zeroPrev {
		return fmt.Errorf("%w: genesis entry has a non-zero prev", ErrTampered)
	}
	mac := computeMAC(l.key, w, prev)
	want, _ := decodeMAC(w.HMAC)
	if !hmac.Equal(mac, want) {
		return fmt.Errorf("%w: HMAC of last entry (serial %d) does not match: edited entry or wrong key", ErrTampered, w.Serial)
	}
	l.next, l.prev, l.size = w.Serial+1, mac, t.end
	return nil
}

// repair truncates the torn tail described by t and records it in the chain.
func (l *Log) repair(t *tail) error {
	if err := l.f.Truncate(t.end); err != nil {
		return fmt.Errorf("audit: truncate torn tail: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync after repair: %w", err)
	}
	r := Repair{Offset: t.end, Dropped: t.torn}
	l.repairs = append(l.repairs, r)
	w, err := l.prepare(RepairType, "", r)
	if err != nil {
		return err
	}
	_, err = l.write(w)
	return err
}

// tail is the end of an audit file: the last complete line and the size of
// any torn (newline-less) bytes after it.
type tail struct {
	last []byte // last complete line without its newline; nil if none
	end  int64  // offset just after the last complete line
	torn int64  // bytes after end
}

// readTail finds the last complete line of a file of the given size,
// reading backwards in growing windows.
func readTail(f *os.File, size int64) (*tail, error) {
	const limit = 2*MaxEntrySize + 2
	for window := int64(64 << 10); ; window *= 4 {
		window = min(window, size, limit)
		buf := make([]byte, window)
		if _, err := f.ReadAt(buf, size-window); err != nil {
			return nil, fmt.Errorf("audit: read tail: %w", err)
		}
		base := size - window
		if t, ok := scanTail(buf, base, size); ok {
			return t, nil
		}
		if window == limit {
			return nil, fmt.Errorf("%w: no complete entry in the last %d bytes", ErrTampered, limit)
		}
	}
}

// scanTail interprets buf, the bytes [base, size) of a file. It reports
// false when buf does not reach back far enough to decide.
func scanTail(buf []byte, base, size int64) (*tail, bool) {
	nl := bytes.LastIndexByte(buf, '\n')
	if nl < 0 {
		if base > 0 {
			return nil, false
		}
		return &tail{end: 0, torn: size}, true
	}
	end := base + int64(nl) + 1
	start := bytes.LastIndexByte(buf[:nl], '\n') + 1
	if start == 0 && base > 0 {
		return nil, false
	}
	return &tail{last: buf[start:nl], end: end, torn: size - end}, true
}
