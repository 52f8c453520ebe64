package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// pruneChunk is how many tasks one Prune transaction deletes, so a large
// prune neither holds the writer for long nor builds a huge transaction.
const pruneChunk = 1000

// Prune deletes terminal (Done, Failed) tasks last updated before cutoff,
// with their history, params, ref and index entries, and returns how many
// it deleted. It deletes in transactions of at most 1000 tasks; when ctx
// ends it stops between two and returns the count so far with ctx's error.
// The file does not shrink: Compact reclaims the space.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	var ids []string
	err := s.view(ctx, "prune", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		for _, st := range []states.State{states.Done, states.Failed} {
			prefix := indexPrefix(st)
			c := b.byState.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				id := string(k[len(prefix):])
				t, err := getTask(b, id, false)
				if err != nil {
					return fmt.Errorf("boltstore: prune: %w", err)
				}
				if t.Updated.Before(cutoff) {
					ids = append(ids, id)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for len(ids) > 0 {
		chunk := ids[:min(pruneChunk, len(ids))]
		ids = ids[len(chunk):]
		n := 0
		err := s.update(ctx, "prune", func(tx *bbolt.Tx) error {
			n = 0
			b, err := bucketsOf(tx)
			if err != nil {
				return err
			}
			for _, id := range chunk {
				if err := pruneTask(b, id, cutoff); errors.Is(err, errSkip) {
					continue
				} else if err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
		deleted += n
	}
	if deleted > 0 {
		s.log.Info("boltstore: pruned", logPath, s.path, logCount, deleted)
	}
	return deleted, nil
}

// errSkip: the task changed (or went) since Prune chose it.
var errSkip = errors.New("skip")

// pruneTask deletes one task and everything that refers to it, after
// checking again, inside the transaction, that it may go.
func pruneTask(b buckets, id string, cutoff time.Time) error {
	t, err := getTask(b, id, false)
	if errors.Is(err, persist.ErrNotFound) {
		return errSkip
	}
	if err != nil {
		return fmt.Errorf("boltstore: prune: %w", err)
	}
	if !t.State.Terminal() || !t.Updated.Before(cutoff) {
		return errSkip
	}
	key := []byte(id)
	dels := []struct {
		b *bbolt.Bucket
		k []byte
	}{{b.history, taskKey(id)}, {b.params, key}, {b.byState, indexKey(t.State, id)}}
	prefix := historyPrefix(id)
	c := b.history.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		dels = append(dels, struct {
			b *bbolt.Bucket
			k []byte
		}{b.history, bytes.Clone(k)})
	}
	if t.Ref != "" && string(b.refs.Get([]byte(t.Ref))) == id {
		dels = append(dels, struct {
			b *bbolt.Bucket
			k []byte
		}{b.refs, []byte(t.Ref)})
	}
	for _, d := range dels {
		if err := d.b.Delete(d.k); err != nil {
			return fmt.Errorf("boltstore: prune %s: %w", id, err)
		}
	}
	return nil
}

// compactTxSize bounds each transaction of the copy Compact makes.
const compactTxSize = 16 << 20

// Compact rewrites the file without the free pages that Prune (and the
// copy-on-write of every commit) leave: it copies the database into a
// temporary file in the same directory (mode 0600), syncs it, renames it
// over the original and reopens it. Reads and Apply wait while it runs.
//
// Between the close of the old file and the reopen of the new one another
// process could take the lock; the store then reports persist.ErrClosed
// with the cause.
func (s *Store) Compact(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: compact: %w", err)
	}
	s.life.Lock()
	defer s.life.Unlock()
	if err := s.usable("compact"); err != nil {
		return err
	}
	before, _ := fileSize(s.path)

	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".compact-*")
	if err != nil {
		return fmt.Errorf("boltstore: compact %s: %w", s.path, err)
	}
	tmpPath := tmp.Name()
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmpPath)
		return fmt.Errorf("boltstore: compact %s: %w", s.path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	if err := copyCompact(tmpPath, s.db); err != nil {
		return fmt.Errorf("boltstore: compact %s: %w", s.path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: compact %s: %w", s.path, err)
	}

	if err := closeQuietly(s.db); err != nil {
		s.db = nil
		return s.reopen(fmt.Errorf("boltstore: compact %s: close: %w", s.path, err))
	}
	s.db = nil
	if err := os.Rename(tmpPath, s.path); err != nil {
		return s.reopen(fmt.Errorf("boltstore: compact %s: %w", s.path, err))
	}
	renamed = true
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("boltstore: compact: sync directory", logPath, s.path, "error", err)
	}
	// The cache holds values, not positions, so it would stay right; it is
	// dropped anyway, as the file is new.
	s.cache.forget()
	if err := s.reopen(nil); err != nil {
		return err
	}
	after, _ := fileSize(s.path)
	s.log.Info("boltstore: compacted", logPath, s.path, logSize, after, "size_before", before)
	return nil
}

// reopen reopens the file after Compact closed it and returns cause (nil
// when all went well). If the file cannot be reopened the store is lost:
// every later call fails with persist.ErrClosed.
func (s *Store) reopen(cause error) error {
	db, err := openDB(s.path, s.opts)
	if err != nil {
		s.lost = err
		if cause != nil {
			return fmt.Errorf("%w; reopen: %w", cause, err)
		}
		return fmt.Errorf("boltstore: compact %s: reopen: %w", s.path, err)
	}
	s.db = db
	return cause
}

// copyCompact copies src, compactly, into the empty file at path.
func copyCompact(path string, src *bbolt.DB) (err error) {
	dst, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the database is damaged (bbolt panicked: %v): %w", r, persist.ErrNotOurs)
		}
		if cerr := closeQuietly(dst); err == nil && cerr != nil {
			err = cerr
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := bbolt.Compact(dst, src, compactTxSize); err != nil {
		return err
	}
	// The copy was written without fsync; make it durable before it
	// replaces the original.
	return dst.Sync()
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
