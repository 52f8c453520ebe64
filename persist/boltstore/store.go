package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/captchafsm/captchafsm/persist"
)

// SchemaVersion is the layout of the buckets this program writes and reads.
// A file with a higher version is refused with persist.ErrNewerSchema; one
// with a lower version is migrated when it is opened (see migrate.go).
//
//	1  tasks, params, history, refs and by_state; values JSON
//	2  + the due index and LastSubmit; tasks and new records binary,
//	   tasks carry Intent
//	3  a task lives in the history bucket right after its records (key
//	   id+0x01), so that a transition's record and task share a leaf; the
//	   tasks bucket is gone
//	4  the due index may hold an active task up to persist.DueSlack
//	   before its NextAt (a task flag and a time say where); a schema-3
//	   file is a schema-4 file whose index is exact, so its migration
//	   only raises the number
const SchemaVersion = 4

// magic marks a bbolt file as a captchafsm database.
const magic = "captchafsm"

// Bucket and key names.
var (
	bucketMeta = []byte("meta")
	// bucketTasks held the tasks up to schema 2; a migration empties it
	// and deletes it.
	bucketTasks  = []byte("tasks")
	bucketParams = []byte("params")
	// bucketHistory holds each task's records (key id, 0x00, seq) and,
	// right after them, the task itself (key id, 0x01).
	bucketHistory = []byte("history")
	bucketRefs    = []byte("refs")
	bucketByState = []byte("by_state")
	// bucketDue is the due index: NextAt (a timeKey), then the id.
	bucketDue = []byte("due")

	keyMagic      = []byte("magic")
	keySchema     = []byte("schema")
	keyLastSubmit = []byte("last_submit")

	// schema1Buckets are the buckets of a schema-1 file, which a file of
	// schema 1 or 2 (or one whose migration stopped) must have.
	schema1Buckets = [][]byte{bucketMeta, bucketTasks, bucketParams, bucketHistory, bucketRefs, bucketByState}
	allBuckets     = [][]byte{bucketMeta, bucketParams, bucketHistory, bucketRefs, bucketByState, bucketDue}
)

// Log keys.
const (
	logPath  = "path"
	logCount = "count"
	logSize  = "size"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the file when Options.LockTimeout is zero.
const DefaultLockTimeout = time.Second

// Options configures Open. The zero value (or nil) means the defaults.
type Options struct {
	// LockTimeout is how long Open waits for the file lock held by another
	// process before it fails with persist.ErrLocked; 0 means 1s.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. A crash can then lose or corrupt
	// committed transitions: for tests and benchmarks only.
	NoSync bool
	// Logger receives open, prune and compaction events; nil discards them.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store is a persist.Store kept in one bbolt file. Every method is safe for
// concurrent use.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	// life guards db: methods use db under RLock; Close and Compact, which
	// replace it, take the write lock. db is nil once the store is closed.
	life sync.RWMutex
	db   *bbolt.DB
	// lost is set when Compact could not reopen the file; methods report it.
	lost error

	// The group-commit queue (see groupcommit.go).
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*applyReq
	closed bool
	// committing is set while a batch is being committed, by the loop or
	// by a lone caller (commitInline): one commit at a time.
	committing bool
	loopDone   chan struct{}
	// arrived wakes the loop while it waits for more requests before a
	// commit (one token, dropped when one is pending).
	arrived chan struct{}
	// reqs recycles Apply's requests (see newApplyReq).
	reqs sync.Pool
	// shut mirrors closed for methods that do not take mu.
	shut atomic.Bool

	// Group-commit counters: requests taken, transactions committed,
	// commits made by their lone caller (commitInline).
	taken, commits, inline atomic.Int64
	// preparing counts Apply calls encoding their request, soon queued.
	preparing atomic.Int64
	// cache holds the tasks the store's commits wrote last.
	cache commitCache
}

var (
	_ persist.Store     = (*Store)(nil)
	_ persist.Compacter = (*Store)(nil)
)

// openError is the error of a failed Open: its text names the file; it
// matches (errors.Is/As) the persist sentinel and the underlying cause.
type openError struct {
	path string
	msg  string
	errs []error
}

func (e *openError) Error() string   { return "boltstore: open " + e.path + ": " + e.msg }
func (e *openError) Unwrap() []error { return e.errs }

func notOurs(path, what string, cause error) error {
	msg := "not a captchafsm database: " + what
	if cause != nil {
		msg += " (" + cause.Error() + ")"
	}
	msg += "; check the path, or move the file aside to start a new database"
	errs := []error{persist.ErrNotOurs}
	if cause != nil {
		errs = append(errs, cause)
	}
	return &openError{path: path, msg: msg, errs: errs}
}

// Open opens the database at path, creating it (mode 0600) with an empty
// schema when the file does not exist or is empty.
//
// A file another process holds fails after opts.LockTimeout with an error
// that wraps persist.ErrLocked; a file that is not a captchafsm database,
// or is damaged, fails with persist.ErrNotOurs; one written by a newer
// captchafsm fails with persist.ErrNewerSchema. Open never panics on a bad
// file.
func Open(path string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	db, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: o, log: o.Logger, db: db, loopDone: make(chan struct{}), arrived: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	go s.loop()
	o.Logger.Info("boltstore: opened", logPath, path)
	return s, nil
}

// openDB opens and checks the bbolt file.
func openDB(path string, o Options) (db *bbolt.DB, err error) {
	var file *os.File
	bo := &bbolt.Options{
		Timeout: o.LockTimeout,
		NoSync:  o.NoSync,
		// Remember the file, so a panic inside bbolt.Open that precheck
		// did not foresee can still close it. (If bbolt had mapped the
		// file, the map keeps the lock until the process exits.)
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	locked := func(cause error) error {
		return &openError{path: path, msg: "database in use by another process",
			errs: []error{persist.ErrLocked, cause}}
	}
	deadline := time.Now().Add(o.LockTimeout)
	unlock, err := lockFile(path, o.LockTimeout)
	switch {
	case errors.Is(err, errLockTimeout):
		return nil, locked(bolterrors.ErrTimeout)
	case err != nil:
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = precheck(path)
	unlock()
	if errors.Is(err, errPrecheck) {
		return nil, notOurs(path, strings.TrimPrefix(err.Error(), errPrecheck.Error()+": "), nil)
	} else if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	// bbolt waits for the rest of the timeout (0 would mean for ever).
	bo.Timeout = max(time.Until(deadline), time.Millisecond)

	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = closeQuietly(db)
			} else if file != nil {
				_ = file.Close()
			}
			db, err = nil, notOurs(path, "the file is damaged", fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	// A damaged file can point bbolt past the end of the mapping; make the
	// fault a panic that the recover above turns into an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	db, err = bbolt.Open(path, 0o600, bo)
	if err != nil {
		var pathErr *fs.PathError
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, locked(err)
		case errors.As(err, &pathErr):
			return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
		case errors.Is(err, bolterrors.ErrVersionMismatch):
			return nil, notOurs(path, "a bbolt file of another format version", err)
		default:
			return nil, notOurs(path, "not a bbolt file, or its header is damaged", err)
		}
	}
	if err := checkDB(path, db, o.Logger); err != nil {
		_ = closeQuietly(db)
		return nil, err
	}
	return db, nil
}

// closeQuietly closes db, which may be damaged, without letting a panic out.
func closeQuietly(db *bbolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("boltstore: close: bbolt panicked: %v", r)
		}
	}()
	return db.Close()
}

// checkDB checks the file's size, magic and schema, writes the meta of a
// new, empty database and migrates one of an older schema.
func checkDB(path string, db *bbolt.DB, log *slog.Logger) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	var fresh, migrating bool
	err = db.View(func(tx *bbolt.Tx) error {
		if need := tx.Size(); st.Size() < need {
			return notOurs(path, fmt.Sprintf("the file is truncated (%d bytes, its pages need %d)", st.Size(), need), nil)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
			if !empty {
				return notOurs(path, "a bbolt database of another program (no captchafsm meta)", nil)
			}
			fresh = true
			return nil
		}
		if m := meta.Get(keyMagic); !bytes.Equal(m, []byte(magic)) {
			return notOurs(path, fmt.Sprintf("meta magic is %q, want %q", m, magic), nil)
		}
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return notOurs(path, fmt.Sprintf("meta schema version is malformed (%d bytes)", len(v)), nil)
		}
		switch schema := binary.BigEndian.Uint64(v); {
		case schema > SchemaVersion:
			return &openError{path: path,
				msg:  fmt.Sprintf("database schema version %d is newer than this program's %d; upgrade captchafsm to open it", schema, SchemaVersion),
				errs: []error{persist.ErrNewerSchema}}
		case schema == 0:
			return notOurs(path, "meta schema version is 0", nil)
		case schema < SchemaVersion || meta.Get(keyMigrating) != nil:
			migrating = true
		}
		need := allBuckets
		if migrating && !schema3(meta) {
			need = schema1Buckets
		}
		for _, name := range need {
			if tx.Bucket(name) == nil {
				return notOurs(path, fmt.Sprintf("bucket %q is missing", name), nil)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if migrating {
		return migrate(path, db, log)
	}
	if !fresh {
		return nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyMagic, []byte(magic)); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
	if err != nil {
		return fmt.Errorf("boltstore: open %s: write meta: %w", path, err)
	}
	return nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close stops the group-commit loop and closes the file: the commit under
// way (the loop's, or a lone caller's) ends first and its callers get its
// outcome; transitions still queued fail with persist.ErrClosed, having
// written nothing. Every method called after Close, Close included, fails
// with persist.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: close %s: %w", s.path, persist.ErrClosed)
	}
	s.closed = true
	s.shut.Store(true)
	s.cond.Broadcast()
	for s.committing {
		s.cond.Wait() // a lone caller's commit (commitInline) ends first
	}
	s.mu.Unlock()
	<-s.loopDone

	s.life.Lock()
	defer s.life.Unlock()
	if s.db == nil {
		return nil // lost after a failed compaction
	}
	err := closeQuietly(s.db)
	s.db = nil
	if err != nil {
		return fmt.Errorf("boltstore: close %s: %w", s.path, err)
	}
	s.log.Info("boltstore: closed", logPath, s.path)
	return nil
}

// errCorrupt is the error of an operation that found damaged data.
func errCorrupt(op string, r any) error {
	return fmt.Errorf("boltstore: %s: the database is damaged (bbolt panicked: %v): %w", op, r, persist.ErrNotOurs)
}

// view runs fn in a read transaction, with ctx checked first and bbolt's
// panics on damaged pages turned into errors.
func (s *Store) view(ctx context.Context, op string, fn func(*bbolt.Tx) error) error {
	return s.run(ctx, op, false, fn)
}

// update is view for a write transaction, outside the group-commit loop.
func (s *Store) update(ctx context.Context, op string, fn func(*bbolt.Tx) error) error {
	return s.run(ctx, op, true, fn)
}

func (s *Store) run(ctx context.Context, op string, write bool, fn func(*bbolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if err := s.usable(op); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = errCorrupt(op, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if write {
		return s.db.Update(fn)
	}
	return s.db.View(fn)
}

// usable reports why s.db cannot be used; the caller holds s.life.
func (s *Store) usable(op string) error {
	if s.db != nil && !s.shut.Load() {
		return nil
	}
	if s.lost != nil {
		return fmt.Errorf("boltstore: %s: %w (the file could not be reopened after compaction: %w)", op, persist.ErrClosed, s.lost)
	}
	return fmt.Errorf("boltstore: %s: %w", op, persist.ErrClosed)
}
