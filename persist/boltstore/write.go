package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// maxKeyLen bounds ids and refs, well below bbolt's key limit (32 KiB), so
// an index key built from them always fits.
const maxKeyLen = 1024

// buckets are the top-level buckets of one transaction.
type buckets struct {
	tasks, params, history, refs, byState *bbolt.Bucket
}

func bucketsOf(tx *bbolt.Tx) (buckets, error) {
	b := buckets{
		tasks:   tx.Bucket(bucketTasks),
		params:  tx.Bucket(bucketParams),
		history: tx.Bucket(bucketHistory),
		refs:    tx.Bucket(bucketRefs),
		byState: tx.Bucket(bucketByState),
	}
	if b.tasks == nil || b.params == nil || b.history == nil || b.refs == nil || b.byState == nil {
		return b, fmt.Errorf("boltstore: a bucket is missing: %w", persist.ErrNotOurs)
	}
	return b, nil
}

// Create stores new tasks, each with its first history record (seq 1, event
// transitions.Created, to Submitting), in one transaction: all or none.
//
// A task's ID must be set; its State must be empty or Submitting. Zero
// Created and Updated times are set to now. On success each task's State,
// Seq (1), Created and Updated are set as stored; on failure the tasks are
// unchanged. An ID already stored fails with persist.ErrDuplicateID, a Ref
// already stored (or given twice) with persist.ErrDuplicateRef.
func (s *Store) Create(ctx context.Context, tasks ...*persist.Task) error {
	type prepared struct {
		task, params, rec []byte
		t                 persist.Task
	}
	now := time.Now()
	preps := make([]prepared, len(tasks))
	for i, t := range tasks {
		switch {
		case t == nil:
			return fmt.Errorf("boltstore: create: task %d is nil", i)
		case t.ID == "":
			return fmt.Errorf("boltstore: create: task %d has no id", i)
		case len(t.ID) > maxKeyLen:
			return fmt.Errorf("boltstore: create: task %d: id is longer than %d bytes", i, maxKeyLen)
		case len(t.Ref) > maxKeyLen:
			return fmt.Errorf("boltstore: create %s: ref is longer than %d bytes", t.ID, maxKeyLen)
		case t.State != "" && t.State != transitions.Initial:
			return fmt.Errorf("boltstore: create %s: state is %s, a new task starts in %s", t.ID, t.State, transitions.Initial)
		}
		c := *t
		c.Params = nil
		c.State = transitions.Initial
		c.Seq = 1
		if c.Created.IsZero() {
			c.Created = now
		}
		if c.Updated.IsZero() {
			c.Updated = c.Created
		}
		rec := persist.Record{Seq: 1, At: c.Created, Event: transitions.Created, To: transitions.Initial}
		var p prepared
		var err error
		if p.task, err = encodeTask(&c); err != nil {
			return fmt.Errorf("boltstore: create %s: %w", t.ID, err)
		}
		if p.params, err = encodeParams(t.Params); err != nil {
			return fmt.Errorf("boltstore: create %s: %w", t.ID, err)
		}
		if p.rec, err = encodeRecord(&rec); err != nil {
			return fmt.Errorf("boltstore: create %s: %w", t.ID, err)
		}
		p.t = c
		preps[i] = p
	}

	err := s.update(ctx, "create", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		// Ids are UUIDv7s, so new tasks are appended: fill pages fully.
		b.tasks.FillPercent, b.params.FillPercent, b.history.FillPercent = 0.9, 0.9, 0.9
		refs := map[string]bool{}
		for _, p := range preps {
			id := []byte(p.t.ID)
			if b.tasks.Get(id) != nil {
				return fmt.Errorf("boltstore: create %s: %w", p.t.ID, persist.ErrDuplicateID)
			}
			if p.t.Ref != "" {
				if refs[p.t.Ref] || b.refs.Get([]byte(p.t.Ref)) != nil {
					return fmt.Errorf("boltstore: create %s: ref %q: %w", p.t.ID, p.t.Ref, persist.ErrDuplicateRef)
				}
				refs[p.t.Ref] = true
				if err := b.refs.Put([]byte(p.t.Ref), id); err != nil {
					return fmt.Errorf("boltstore: create %s: %w", p.t.ID, err)
				}
			}
			hb, err := b.history.CreateBucket(id)
			if err != nil {
				// The id check above passed, so a history without a task
				// is left from damage; refuse to mix histories.
				return fmt.Errorf("boltstore: create %s: history: %w", p.t.ID, err)
			}
			hb.FillPercent = 0.9
			for _, put := range []struct {
				b    *bbolt.Bucket
				k, v []byte
			}{
				{hb, seqKey(1), p.rec},
				{b.tasks, id, p.task},
				{b.params, id, p.params},
				{b.byState, indexKey(p.t.State, p.t.ID), []byte{}},
			} {
				if err := put.b.Put(put.k, put.v); err != nil {
					return fmt.Errorf("boltstore: create %s: %w", p.t.ID, err)
				}
			}
		}
		// The caller gave up while we worked: commit nothing.
		return ctx.Err()
	})
	if err != nil {
		if err == ctx.Err() {
			return fmt.Errorf("boltstore: create: %w", err)
		}
		return err
	}
	for i, t := range tasks {
		p := &preps[i].t
		t.State, t.Seq, t.Created, t.Updated = p.State, p.Seq, p.Created, p.Updated
	}
	return nil
}

// Request states of the group-commit queue.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// applyReq is one Apply waiting for a commit.
type applyReq struct {
	task persist.Task // snapshot of the caller's task, without Params
	from states.State
	seq  uint64 // the new record's seq: task.Seq+1
	rec  []byte // the encoded record

	state atomic.Int32
	err   error // set inside the transaction
	done  chan error
}

// errNothingWritten rolls back a transaction in which every request
// conflicted, sparing a commit (and its fsync).
var errNothingWritten = errors.New("boltstore: nothing to commit")

// Apply commits one transition; see persist.Store. Concurrent calls share
// commits: a single group-commit goroutine takes every queued request,
// checks each against the stored task inside one transaction, and commits
// them together; a request that conflicts fails alone. Apply returns after
// the commit is durable (fsync, unless Options.NoSync).
//
// A zero rec.At is set to now and a zero t.Updated to rec.At. The task's
// State must be rec.To. Ref, Method, Created and Params are kept as stored.
// If ctx ends before the request is taken, Apply returns ctx's error and
// nothing is written; once taken, it waits for the commit's outcome.
func (s *Store) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: apply: %w", err)
	}
	switch {
	case t == nil || rec == nil:
		return errors.New("boltstore: apply: nil task or record")
	case t.ID == "":
		return errors.New("boltstore: apply: task has no id")
	case !rec.To.Valid():
		return fmt.Errorf("boltstore: apply %s: record's target state %q is not a state", t.ID, rec.To)
	case !rec.From.Valid():
		return fmt.Errorf("boltstore: apply %s: record's source state %q is not a state", t.ID, rec.From)
	case rec.Event == "":
		return fmt.Errorf("boltstore: apply %s: record has no event", t.ID)
	case t.State != rec.To:
		return fmt.Errorf("boltstore: apply %s: task state %s is not the record's target %s", t.ID, t.State, rec.To)
	}
	r := &applyReq{task: *t, from: rec.From, seq: t.Seq + 1, done: make(chan error, 1)}
	r.task.Params = nil
	rc := *rec
	rc.Seq = r.seq
	if rc.At.IsZero() {
		rc.At = time.Now()
	}
	if r.task.Updated.IsZero() {
		r.task.Updated = rc.At
	}
	var err error
	if r.rec, err = encodeRecord(&rc); err != nil {
		return fmt.Errorf("boltstore: apply %s: %w", t.ID, err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: apply %s: %w", t.ID, persist.ErrClosed)
	}
	s.queue = append(s.queue, r)
	s.cond.Signal()
	s.mu.Unlock()

	select {
	case err = <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("boltstore: apply %s: %w", t.ID, ctx.Err())
		}
		err = <-r.done
	}
	if err != nil {
		return err
	}
	t.Seq, rec.Seq = r.seq, r.seq
	rec.At = rc.At
	t.Updated = r.task.Updated
	return nil
}

// loop is the group-commit goroutine: it takes all queued requests at once
// and commits them in one transaction, never waiting for more to arrive.
func (s *Store) loop() {
	defer close(s.loopDone)
	debug.SetPanicOnFault(true)
	var batch []*applyReq
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if s.closed {
			pending := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, r := range pending {
				r.done <- fmt.Errorf("boltstore: apply %s: %w", r.task.ID, persist.ErrClosed)
			}
			return
		}
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		s.commit(batch)
		clear(batch)
	}
}

// commit applies a batch of requests in as few transactions as it can:
// one, unless a write fails for one request, which is then dropped with
// its error and the rest retried.
func (s *Store) commit(batch []*applyReq) {
	live := make([]*applyReq, 0, len(batch))
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			live = append(live, r)
			s.taken.Add(1)
		}
	}
	if len(live) == 0 {
		return
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.db == nil {
		err := s.usable("apply")
		for _, r := range live {
			r.done <- err
		}
		return
	}
	for len(live) > 0 {
		failed, err := s.runBatch(live)
		if failed >= 0 {
			live[failed].done <- err
			live = slices.Delete(live, failed, failed+1)
			continue
		}
		for _, r := range live {
			if err != nil {
				r.done <- fmt.Errorf("boltstore: apply %s: commit: %w", r.task.ID, err)
			} else {
				r.done <- r.err
			}
		}
		return
	}
}

// runBatch runs one transaction over live. A request that fails its checks
// gets r.err and writes nothing; one whose write fails makes the whole
// transaction roll back, and runBatch returns its index and error.
func (s *Store) runBatch(live []*applyReq) (failed int, err error) {
	failed = -1
	defer func() {
		if r := recover(); r != nil {
			failed, err = -1, errCorrupt("apply", r)
		}
	}()
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		b.tasks.FillPercent = 0.9
		wrote := false
		for i, r := range live {
			r.err = nil
			writes, err := checkApply(b, r)
			if err != nil {
				r.err = err
				continue
			}
			for _, w := range writes {
				if w.v == nil {
					err = w.b.Delete(w.k)
				} else {
					err = w.b.Put(w.k, w.v)
				}
				if err != nil {
					failed = i
					return fmt.Errorf("boltstore: apply %s: %w", r.task.ID, err)
				}
			}
			wrote = true
		}
		if !wrote {
			return errNothingWritten
		}
		return nil
	})
	switch {
	case errors.Is(err, errNothingWritten):
		err = nil
	case err == nil:
		s.commits.Add(1)
	}
	return failed, err
}

// write is one Put (or, with a nil v, Delete).
type write struct {
	b    *bbolt.Bucket
	k, v []byte
}

// checkApply checks r against the stored task and returns the writes that
// apply it, touching nothing.
func checkApply(b buckets, r *applyReq) ([]write, error) {
	id := []byte(r.task.ID)
	v := b.tasks.Get(id)
	if v == nil {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, persist.ErrNotFound)
	}
	stored, err := decodeTask(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, err)
	}
	if stored.State != r.from || stored.Seq != r.task.Seq {
		return nil, fmt.Errorf("boltstore: apply %s: stored task is %s at seq %d, the transition is from %s at seq %d: %w",
			r.task.ID, stored.State, stored.Seq, r.from, r.task.Seq, persist.ErrConflict)
	}
	hb := b.history.Bucket(id)
	if hb == nil {
		return nil, fmt.Errorf("boltstore: apply %s: history bucket is missing: %w", r.task.ID, persist.ErrNotOurs)
	}
	key := seqKey(r.seq)
	if hb.Get(key) != nil {
		return nil, fmt.Errorf("boltstore: apply %s: history already holds seq %d: %w", r.task.ID, r.seq, persist.ErrNotOurs)
	}
	hb.FillPercent = 0.9
	nt := r.task
	nt.Ref, nt.Method, nt.Created = stored.Ref, stored.Method, stored.Created
	nt.Seq = r.seq
	tv, err := encodeTask(&nt)
	if err != nil {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, err)
	}
	writes := []write{{hb, key, r.rec}, {b.tasks, id, tv}}
	if nt.State != stored.State {
		writes = append(writes,
			write{b.byState, indexKey(stored.State, r.task.ID), nil},
			write{b.byState, indexKey(nt.State, r.task.ID), []byte{}})
	}
	return writes, nil
}
