package boltstore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/persist/persisttest"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open opens path and closes the store at the end of the test.
func open(t *testing.T, path string, opts *boltstore.Options) *boltstore.Store {
	t.Helper()
	if opts == nil {
		opts = &boltstore.Options{NoSync: true}
	}
	s, err := boltstore.Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, persist.ErrClosed) {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	persisttest.Run(t, func(t *testing.T) persist.Store {
		return open(t, filepath.Join(t.TempDir(), "test.db"), nil)
	})
}

// The suite once more with real fsync: group commit must not change the
// outcome.
func TestConformanceSync(t *testing.T) {
	if testing.Short() {
		t.Skip("fsync on every commit is slow")
	}
	persisttest.Run(t, func(t *testing.T) persist.Store {
		return open(t, filepath.Join(t.TempDir(), "test.db"), &boltstore.Options{})
	})
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 42, time.UTC)

// fill creates n tasks with params of size bytes; every other task ends
// Done at t0, the rest wait in Polling with a NextAt.
func fill(t *testing.T, s persist.Store, n, size int) []*persist.Task {
	t.Helper()
	ctx := context.Background()
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Ref: "ref-" + strconv.Itoa(i), Method: "base64",
			Params: map[string]string{"body": strings.Repeat("A", size)}, Created: t0, Updated: t0}
	}
	require.NoError(t, s.Create(ctx, tasks...))
	for i, task := range tasks {
		task.State, task.ProviderID = states.Polling, "p"+strconv.Itoa(i)
		task.NextAt = t0.Add(time.Duration(i) * time.Millisecond).In(time.FixedZone("X", 3600))
		require.NoError(t, s.Apply(ctx, task, &persist.Record{At: t0, From: states.Submitting,
			Event: transitions.SubmitAccepted, To: states.Polling}))
		if i%2 == 0 {
			task.State, task.Token, task.NextAt = states.Done, "tok", time.Time{}
			require.NoError(t, s.Apply(ctx, task, &persist.Record{At: t0, From: states.Polling,
				Event: transitions.Solved, To: states.Done}))
		}
	}
	return tasks
}

// check asserts that s holds tasks as they are.
func check(t *testing.T, s persist.Store, tasks []*persist.Task) {
	t.Helper()
	ctx := context.Background()
	for _, want := range tasks {
		got, err := s.Get(ctx, want.ID)
		require.NoError(t, err)
		require.Equal(t, want.State, got.State)
		require.Equal(t, want.Seq, got.Seq)
		require.Equal(t, want.Params, got.Params)
		require.Equal(t, want.Token, got.Token)
		require.True(t, want.NextAt.Equal(got.NextAt), "NextAt: want %v, got %v", want.NextAt, got.NextAt)
		byRef, err := s.GetByRef(ctx, want.Ref)
		require.NoError(t, err)
		require.Equal(t, want.ID, byRef.ID)
		hist, err := s.History(ctx, want.ID)
		require.NoError(t, err)
		require.Len(t, hist, int(want.Seq))
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := boltstore.Open(path, nil)
	require.NoError(t, err)
	tasks := fill(t, s, 20, 100)
	require.NoError(t, s.Close())

	s2 := open(t, path, nil)
	check(t, s2, tasks)
	counts, err := s2.Count(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 10, counts[states.Polling])
	assert.Equal(t, 10, counts[states.Done])
	// Work goes on where it stopped.
	task := tasks[1]
	task.State = states.Done
	require.NoError(t, s2.Apply(context.Background(), task, &persist.Record{From: states.Polling, Event: transitions.Solved, To: states.Done}))
	assert.Equal(t, uint64(3), task.Seq)
}

func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// The meta was written: the file opens again as ours.
	s = open(t, path, nil)
	n, err := s.Count(context.Background())
	require.NoError(t, err)
	assert.Empty(t, n)
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mode.db")
	s := open(t, path, nil)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.NoError(t, s.Compact(context.Background()))
	st, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "after Compact")
}

func TestLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "locked.db")
		s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		start := time.Now()
		_, err = boltstore.Open(path, &boltstore.Options{LockTimeout: 200 * time.Millisecond})
		require.ErrorIs(t, err, persist.ErrLocked)
		assert.Equal(t, "boltstore: open "+path+": database in use by another process", err.Error())
		assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "Open gave up before the lock timeout")
		require.NoError(t, s.Close())
		// Released: it opens now.
		s, err = boltstore.Open(path, &boltstore.Options{LockTimeout: 200 * time.Millisecond})
		require.NoError(t, err)
		require.NoError(t, s.Close())
	})
}

// writeDB makes a valid store with some tasks at path and closes it.
func writeDB(t *testing.T, path string, n int) {
	t.Helper()
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	fill(t, s, n, 300)
	require.NoError(t, s.Close())
}

// editBolt changes a file with bbolt directly.
func editBolt(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

func TestOpenBadFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		is   error
		msg  string // a part of the message
	}{
		{"text file", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("hello, not a database\n", 1000)), 0o600))
		}, persist.ErrNotOurs, "not a bbolt file"},
		{"short garbage", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("\x00\x01garbage"), 0o600))
		}, persist.ErrNotOurs, "not a bbolt file (no bbolt header in its 9 bytes)"},
		{"short text", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("a line of text\n", 300)), 0o600))
		}, persist.ErrNotOurs, "not a bbolt file"},
		{"truncated to half", func(t *testing.T, path string) {
			writeDB(t, path, 200)
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Size()/2))
		}, persist.ErrNotOurs, "not a captchafsm database"},
		{"truncated to one page", func(t *testing.T, path string) {
			writeDB(t, path, 10)
			require.NoError(t, os.Truncate(path, 4096))
		}, persist.ErrNotOurs, "not a captchafsm database"},
		{"flipped meta pages", func(t *testing.T, path string) {
			writeDB(t, path, 10)
			flip(t, path, 16+8, 4096+16+8) // inside both meta pages
		}, persist.ErrNotOurs, "not a captchafsm database"},
		{"another program's bbolt file", func(t *testing.T, path string) {
			editBolt(t, path, func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
		}, persist.ErrNotOurs, "another program"},
		{"wrong magic", func(t *testing.T, path string) {
			writeDB(t, path, 1)
			editBolt(t, path, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("magic"), []byte("etcd")) })
		}, persist.ErrNotOurs, `meta magic is "etcd"`},
		{"malformed schema", func(t *testing.T, path string) {
			writeDB(t, path, 1)
			editBolt(t, path, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("1")) })
		}, persist.ErrNotOurs, "schema version is malformed"},
		{"missing bucket", func(t *testing.T, path string) {
			writeDB(t, path, 1)
			editBolt(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("refs")) })
		}, persist.ErrNotOurs, `bucket "refs" is missing`},
		{"newer schema", func(t *testing.T, path string) {
			writeDB(t, path, 1)
			editBolt(t, path, func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, boltstore.SchemaVersion+6))
			})
		}, persist.ErrNewerSchema, fmt.Sprintf("schema version %d is newer than this program's %d", boltstore.SchemaVersion+6, boltstore.SchemaVersion)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			tt.make(t, path)
			before, err := os.ReadFile(path)
			require.NoError(t, err)
			s, err := boltstore.Open(path, &boltstore.Options{LockTimeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
			}
			require.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), "boltstore: open "+path+": ")
			assert.Contains(t, err.Error(), tt.msg)
			// The refused file is left as it was, and unlocked.
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			if tt.is == persist.ErrNewerSchema || !strings.HasPrefix(tt.name, "another") {
				assert.Equal(t, before, after, "Open changed a file it refused")
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 100 * time.Millisecond, ReadOnly: true})
			if err == nil {
				require.NoError(t, db.Close())
			} else {
				require.NotErrorIs(t, err, bbolt.ErrTimeout, "Open left the file locked")
			}
		})
	}
}

// flip inverts the bytes at offsets of the file at path.
func flip(t *testing.T, path string, offsets ...int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	for _, off := range offsets {
		b := make([]byte, 1)
		_, err := f.ReadAt(b, off)
		require.NoError(t, err)
		b[0] = ^b[0]
		_, err = f.WriteAt(b, off)
		require.NoError(t, err)
	}
}

// TestFlippedBytesNeverPanic damages one byte at a time, in the header and
// in the middle of every page the database uses, and uses the store: any
// call may fail, none may panic or crash the process.
func TestFlippedBytesNeverPanic(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	writeDB(t, good, 30)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	const pageSize = 4096
	used := len(bytes.TrimRight(data, "\x00"))
	var offsets []int
	for page := 0; page*pageSize < used; page++ {
		for _, off := range []int{0, 8, 10, 12, 24, 300, 2000} {
			offsets = append(offsets, page*pageSize+off)
		}
	}
	ctx := context.Background()
	refused, failed, unseen := 0, 0, 0
	for _, off := range offsets {
		path := filepath.Join(dir, fmt.Sprintf("flip-%d.db", off))
		bad := append([]byte(nil), data...)
		bad[off] ^= 0xff
		require.NoError(t, os.WriteFile(path, bad, 0o600))
		s, err := boltstore.Open(path, &boltstore.Options{NoSync: true, LockTimeout: 100 * time.Millisecond})
		if err != nil {
			refused++
			require.Contains(t, err.Error(), path)
			continue
		}
		var errs []error
		list, err := s.List(ctx, persist.ListOptions{})
		errs = append(errs, err)
		_, err = s.Count(ctx)
		errs = append(errs, err)
		_, err = s.List(ctx, persist.ListOptions{States: []states.State{states.Polling}})
		errs = append(errs, err)
		for _, task := range list {
			got, err := s.Get(ctx, task.ID)
			errs = append(errs, err)
			_, err = s.GetByRef(ctx, task.Ref)
			errs = append(errs, err)
			_, err = s.History(ctx, task.ID)
			errs = append(errs, err)
			if err == nil && got != nil && got.State == states.Polling {
				got.State = states.Done
				errs = append(errs, s.Apply(ctx, got, &persist.Record{From: states.Polling, Event: transitions.Solved, To: states.Done}))
			}
		}
		_, err = s.Prune(ctx, t0.Add(time.Hour))
		errs = append(errs, err)
		if errors.Join(errs...) != nil {
			failed++
		} else {
			unseen++
		}
		require.NoError(t, s.Close())
		require.NoError(t, os.Remove(path))
	}
	t.Logf("%d damaged files: %d refused by Open, %d opened with failing calls, %d damage unseen",
		len(offsets), refused, failed, unseen)
	assert.NotZero(t, refused)
	assert.NotZero(t, failed)
}

func TestPruneAndCompactShrink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	s := open(t, path, nil)
	tasks := fill(t, s, 400, 8<<10)
	size := func() int64 {
		st, err := os.Stat(path)
		require.NoError(t, err)
		return st.Size()
	}
	before := size()
	n, err := s.Prune(context.Background(), t0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 200, n)
	assert.Equal(t, before, size(), "Prune alone does not shrink the file")

	require.NoError(t, s.Compact(context.Background()))
	after := size()
	t.Logf("%d bytes before, %d after", before, after)
	assert.Less(t, after, before*6/10)
	var kept []*persist.Task
	for i, task := range tasks {
		if i%2 == 1 {
			kept = append(kept, task)
		}
	}
	check(t, s, kept)
	for _, task := range tasks[:4:4] {
		if task.State == states.Done {
			_, err := s.Get(context.Background(), task.ID)
			require.ErrorIs(t, err, persist.ErrNotFound)
		}
	}
	// No temporary file is left beside the database.
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// And it survives a restart.
	require.NoError(t, s.Close())
	check(t, open(t, path, nil), kept)
}

func TestApplyValidation(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "v.db"), nil)
	ctx := context.Background()
	task := &persist.Task{ID: persist.NewID(), Method: "post"}
	require.NoError(t, s.Create(ctx, task))
	tests := []struct {
		name string
		task *persist.Task
		rec  *persist.Record
		want string
	}{
		{"nil record", task, nil, "nil task or record"},
		{"state is not the target", &persist.Task{ID: task.ID, Seq: 1, State: states.Done},
			&persist.Record{From: states.Submitting, Event: transitions.Solved, To: states.Polling}, "is not the record's target"},
		{"no event", &persist.Task{ID: task.ID, Seq: 1, State: states.Polling},
			&persist.Record{From: states.Submitting, To: states.Polling}, "no event"},
		{"no source", &persist.Task{ID: task.ID, Seq: 1, State: states.Polling},
			&persist.Record{Event: transitions.SubmitAccepted, To: states.Polling}, "source state"},
		{"unknown target", &persist.Task{ID: task.ID, Seq: 1, State: "Sleeping"},
			&persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: "Sleeping"}, "target state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Apply(ctx, tt.task, tt.rec)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotErrorIs(t, err, persist.ErrConflict)
		})
	}
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	assert.Len(t, hist, 1)
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := boltstore.Open(dir, &boltstore.Options{LockTimeout: 100 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a directory")
}

func TestOptionsDefaults(t *testing.T) {
	// A nil *Options is the defaults, with real fsync.
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := boltstore.Open(path, nil)
	require.NoError(t, err)
	assert.Equal(t, path, s.Path())
	require.NoError(t, s.Close())
}

// Ids of any form keep their histories apart, even when one is a prefix of
// another; an id with a 0x00 byte is refused.
func TestIDsKeepHistoriesApart(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ids.db"), nil)
	ctx := context.Background()
	ids := []string{"a", "ab", "a\x01", "a/b", strings.Repeat("x", 1024)}
	for i, id := range ids {
		task := &persist.Task{ID: id, Method: "post", Created: t0}
		require.NoError(t, s.Create(ctx, task))
		for range i {
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting}))
		}
	}
	for i, id := range ids {
		hist, err := s.History(ctx, id)
		require.NoError(t, err)
		assert.Len(t, hist, i+1, "%q", id)
	}
	for _, id := range []string{"a\x00b", strings.Repeat("x", 1025)} {
		assert.Error(t, s.Create(ctx, &persist.Task{ID: id}), "%q", id)
	}
	_, err := s.History(ctx, "")
	assert.ErrorIs(t, err, persist.ErrNotFound)
}

// TestSpace: Space counts the pages that hold data, not the file's
// apparent size; Prune moves pages from used to free, Compact gives the
// free ones back.
func TestSpace(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "space.db"), nil)
	empty, err := s.Space(ctx)
	require.NoError(t, err)
	tasks := fill(t, s, 2000, 1000)
	for _, task := range tasks[3:] {
		if task.State == states.Polling {
			task.Params, task.State = nil, states.Failed
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Polling, Event: transitions.PermanentError, To: states.Failed}))
		}
	}
	full, err := s.Space(ctx)
	require.NoError(t, err)
	assert.Greater(t, full.Used, empty.Used+2000*1000, "2,000 tasks with 1 kB of params each")
	assert.LessOrEqual(t, full.Used+full.Free, full.File, "pages lie inside the file")

	n, err := s.Prune(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1999, n)
	pruned, err := s.Space(ctx)
	require.NoError(t, err)
	assert.Less(t, pruned.Used, full.Used/10, "the pruned tasks' pages are free")
	assert.Greater(t, pruned.Free, full.Used/2)

	require.NoError(t, s.Compact(ctx))
	compacted, err := s.Space(ctx)
	require.NoError(t, err)
	assert.Less(t, compacted.Free, int64(64<<10), "Compact keeps no free pages")
	assert.InDelta(t, pruned.Used, compacted.Used, 64<<10)
	assert.LessOrEqual(t, compacted.Disk, compacted.File, "the file's tail is sparse")
	assert.GreaterOrEqual(t, compacted.Disk, compacted.Used-8<<10)
	t.Logf("empty %+v\nfull %+v\npruned %+v\ncompacted %+v", empty, full, pruned, compacted)
}
