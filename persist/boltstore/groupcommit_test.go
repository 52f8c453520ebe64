package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func openInternal(t *testing.T, opts *Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "g.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, persist.ErrClosed) {
			t.Error(err)
		}
	})
	return s
}

func createN(t *testing.T, s *Store, n int) []*persist.Task {
	t.Helper()
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Method: "post"}
	}
	require.NoError(t, s.Create(context.Background(), tasks...))
	return tasks
}

func sending(task *persist.Task) *persist.Record {
	return &persist.Record{From: task.State, Event: transitions.SubmitSending, To: task.State}
}

// waitFor yields until cond holds; the goroutines it waits for are runnable,
// so it ends without any timer.
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

// holdWriter holds bbolt's writer lock until the returned function is
// called: the loop takes requests but cannot commit them, while reads go on.
func holdWriter(t *testing.T, s *Store) func() {
	t.Helper()
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.db.Update(func(*bbolt.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	var once sync.Once
	return func() {
		once.Do(func() {
			close(release)
			require.NoError(t, <-done)
		})
	}
}

// With real fsync, concurrent callers share commits.
func TestGroupCommitShares(t *testing.T) {
	s := openInternal(t, nil)
	const n = 500
	tasks := createN(t, s, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, task := range tasks {
		wg.Go(func() { errs[i] = s.Apply(context.Background(), task, sending(task)) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	commits := s.commits.Load()
	t.Logf("%d transitions in %d commits", n, commits)
	assert.Equal(t, int64(n), s.taken.Load())
	assert.LessOrEqual(t, commits, int64(n/2), "callers did not share commits")
}

// A caller whose context ends while its request waits in the queue gets the
// context's error and nothing is written; one already taken gets the
// commit's outcome; one still queued at Close gets ErrClosed.
func TestApplyQueuedCancelAndClose(t *testing.T) {
	s := openInternal(t, &Options{NoSync: true})
	ctx := context.Background()
	tasks := createN(t, s, 3)

	release := holdWriter(t, s)
	defer release()
	errA := make(chan error, 1)
	go func() { errA <- s.Apply(ctx, tasks[0], sending(tasks[0])) }()
	waitFor(func() bool { return s.taken.Load() == 1 })

	cctx, cancel := context.WithCancel(ctx)
	errB := make(chan error, 1)
	go func() { errB <- s.Apply(cctx, tasks[1], sending(tasks[1])) }()
	waitFor(func() bool { return s.queued() == 1 })
	cancel()
	require.ErrorIs(t, <-errB, context.Canceled)

	errC := make(chan error, 1)
	go func() { errC <- s.Apply(ctx, tasks[2], sending(tasks[2])) }()
	waitFor(func() bool { return s.queued() == 2 })

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(func() bool { return s.shut.Load() })
	release()

	require.NoError(t, <-errA, "a taken request commits despite Close")
	require.ErrorIs(t, <-errC, persist.ErrClosed)
	require.NoError(t, <-closed)
	assert.Equal(t, uint64(2), tasks[0].Seq)
	assert.Equal(t, uint64(1), tasks[1].Seq)
	assert.Equal(t, uint64(1), tasks[2].Seq)

	s2, err := Open(s.path, &Options{NoSync: true})
	require.NoError(t, err)
	defer s2.Close()
	for i, want := range []int{2, 1, 1} {
		hist, err := s2.History(ctx, tasks[i].ID)
		require.NoError(t, err)
		assert.Len(t, hist, want, "task %d", i)
	}
}

// A transition that conflicts with the committed task fails at once,
// without queueing. In one batch, a request that conflicts with an earlier
// one of the batch fails alone and the others commit.
func TestBatchConflictsAlone(t *testing.T) {
	s := openInternal(t, &Options{NoSync: true})
	ctx := context.Background()
	tasks := createN(t, s, 3)

	release := holdWriter(t, s)
	defer release()
	type res struct {
		i   int
		err error
	}
	out := make(chan res, 4)
	// A first request keeps the loop busy while the next ones queue up.
	go func() { out <- res{-1, s.Apply(ctx, tasks[2], sending(tasks[2]))} }()
	waitFor(func() bool { return s.taken.Load() == 1 })

	wrongFrom := tasks[1].Clone()
	err := s.Apply(ctx, wrongFrom, &persist.Record{From: states.Polling, Event: transitions.NotReady, To: states.Submitting})
	require.ErrorIs(t, err, persist.ErrConflict)
	assert.Zero(t, s.queued(), "a stale transition was queued")

	stale := tasks[0].Clone()
	polling := tasks[1].Clone()
	polling.State = states.Polling
	reqs := []struct {
		t   *persist.Task
		rec *persist.Record
	}{
		{tasks[0], sending(tasks[0])},
		{stale, sending(stale)}, // same seq as the first: conflicts after it
		{polling, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling}},
	}
	for i, r := range reqs {
		go func() { out <- res{i, s.Apply(ctx, r.t, r.rec)} }()
		waitFor(func() bool { return s.queued() == i+1 })
	}
	before := s.commits.Load()
	release()
	got := map[int]error{}
	for range 4 {
		r := <-out
		got[r.i] = r.err
	}
	assert.NoError(t, got[-1])
	assert.NoError(t, got[0])
	assert.ErrorIs(t, got[1], persist.ErrConflict)
	assert.NoError(t, got[2])
	assert.Equal(t, int64(2), s.commits.Load()-before, "the three queued requests shared one commit")
	for i, want := range []uint64{2, 2, 2} {
		got, err := s.Get(ctx, tasks[i].ID)
		require.NoError(t, err)
		assert.Equal(t, want, got.Seq, "task %d", i)
	}
	p, err := s.Get(ctx, tasks[1].ID)
	require.NoError(t, err)
	assert.Equal(t, states.Polling, p.State)
}

// A lone caller commits its own transition (commitInline), without the
// loop; Close waits for that commit, which succeeds, and callers that come
// meanwhile queue for the loop.
func TestLoneCallerCommitsInline(t *testing.T) {
	old := nothingRunnable
	nothingRunnable = func(*applyReq) bool { return true }
	defer func() { nothingRunnable = old }()
	s := openInternal(t, &Options{NoSync: true})
	ctx := context.Background()
	tasks := createN(t, s, 3)
	for range 5 {
		require.NoError(t, s.Apply(ctx, tasks[0], sending(tasks[0])))
	}
	assert.Equal(t, int64(5), s.inline.Load(), "sequential Applies commit inline")
	assert.Equal(t, int64(5), s.commits.Load())

	release := holdWriter(t, s)
	defer release()
	errA := make(chan error, 1)
	go func() { errA <- s.Apply(ctx, tasks[1], sending(tasks[1])) }()
	waitFor(func() bool { return s.inline.Load() == 6 })
	errB := make(chan error, 1)
	go func() { errB <- s.Apply(ctx, tasks[2], sending(tasks[2])) }()
	waitFor(func() bool { return s.queued() == 1 }) // not inline: a commit runs
	assert.Equal(t, int64(6), s.inline.Load())

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(func() bool { return s.shut.Load() })
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a lone caller's commit ran", err)
	default:
	}
	release()
	require.NoError(t, <-errA, "the inline commit ends before Close closes the file")
	require.NoError(t, <-closed)
	err := <-errB
	require.True(t, err == nil || errors.Is(err, persist.ErrClosed), "queued behind Close: %v", err)

	s2, err2 := Open(s.path, &Options{NoSync: true})
	require.NoError(t, err2)
	defer s2.Close()
	hist, err2 := s2.History(ctx, tasks[1].ID)
	require.NoError(t, err2)
	assert.Len(t, hist, 2)
	hist, err2 = s2.History(ctx, tasks[2].ID)
	require.NoError(t, err2)
	assert.Len(t, hist, map[bool]int{true: 2, false: 1}[err == nil], "task 2's history matches its Apply's outcome")
}

// A commit that reads a damaged page of the file (here the due index's
// root points its children far past the end of the memory map) fails with
// persist.ErrNotOurs, whether the loop or a lone caller (commitInline, on
// the caller's goroutine) runs it: the fault must be a recovered panic,
// not a crash of the process.
func TestCommitFaultIsAnError(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(map[bool]string{false: "loop", true: "inline"}[inline], func(t *testing.T) {
			old := nothingRunnable
			nothingRunnable = func(*applyReq) bool { return inline }
			defer func() { nothingRunnable = old }()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "fault.db")
			s, err := Open(path, &Options{NoSync: true})
			require.NoError(t, err)
			tasks := make([]*persist.Task, 400)
			for i := range tasks {
				tasks[i] = &persist.Task{ID: persist.NewID(), Method: "post", NextAt: time.Unix(int64(i), 0)}
			}
			require.NoError(t, s.Create(ctx, tasks...))
			require.NoError(t, s.Close())

			// Point every child of the due index's root (a branch page)
			// 64 GiB into the file: past the end of its memory map, where
			// a read faults (bbolt checks no page id against the file).
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
			require.NoError(t, err)
			var root uint64
			require.NoError(t, db.View(func(tx *bbolt.Tx) error {
				root = uint64(tx.Bucket(bucketDue).Root())
				return nil
			}))
			size := int64(db.Info().PageSize)
			require.NoError(t, db.Close())
			past := uint64(64<<30) / uint64(size)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			page := make([]byte, size)
			_, err = f.ReadAt(page, int64(root)*size)
			require.NoError(t, err)
			require.Equal(t, uint16(branchPageFlag), binary.NativeEndian.Uint16(page[8:]), "the due index's root is a branch")
			for i := range int(binary.NativeEndian.Uint16(page[10:])) {
				binary.NativeEndian.PutUint64(page[pageHeaderLen+16*i+8:], past)
			}
			_, err = f.WriteAt(page, int64(root)*size)
			require.NoError(t, err)
			require.NoError(t, f.Close())

			s, err = Open(path, &Options{NoSync: true})
			require.NoError(t, err)
			defer s.Close()
			task := tasks[0]
			task.NextAt = task.NextAt.Add(time.Hour) // its due entry moves
			err = s.Apply(ctx, task, sending(task))
			require.ErrorIs(t, err, persist.ErrNotOurs)
			assert.Equal(t, int64(map[bool]int{true: 1}[inline]), s.inline.Load())
		})
	}
}
