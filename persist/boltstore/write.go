package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/metrics"
	"strings"
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
	// history holds the records and the tasks (see taskKey).
	meta, params, history, refs, byState, due *bbolt.Bucket
}

func bucketsOf(tx *bbolt.Tx) (buckets, error) {
	b := buckets{
		meta:    tx.Bucket(bucketMeta),
		params:  tx.Bucket(bucketParams),
		history: tx.Bucket(bucketHistory),
		refs:    tx.Bucket(bucketRefs),
		byState: tx.Bucket(bucketByState),
		due:     tx.Bucket(bucketDue),
	}
	if b.meta == nil || b.params == nil || b.history == nil || b.refs == nil || b.byState == nil || b.due == nil {
		return b, fmt.Errorf("boltstore: a bucket is missing: %w", persist.ErrNotOurs)
	}
	return b, nil
}

// applyBuckets opens the buckets a commit of transitions writes: the
// history (records and tasks), the due index and, when withState, the
// by-state index. Meta is opened by the commit that raises LastSubmit.
// Each lookup costs a lone commit about a microsecond, a tenth of what
// the store adds to raw bbolt's CPU.
func applyBuckets(tx *bbolt.Tx, withState bool) (buckets, error) {
	b := buckets{history: tx.Bucket(bucketHistory), due: tx.Bucket(bucketDue)}
	if withState {
		b.byState = tx.Bucket(bucketByState)
	}
	if b.history == nil || b.due == nil || (withState && b.byState == nil) {
		return b, fmt.Errorf("boltstore: a bucket is missing: %w", persist.ErrNotOurs)
	}
	return b, nil
}

// taskValue returns the stored value of the task id, nil when there is
// none.
func (b buckets) taskValue(id string) []byte { return b.history.Get(taskKey(id)) }

// Create stores new tasks, each with its first history record (seq 1, event
// transitions.Created, to Submitting), in one transaction: all or none.
//
// A task's ID must be set; its State must be empty or Submitting. Zero
// Created and Updated times are set to now. Each task enters the due
// index under its NextAt. On success each task's State, Seq (1), Intent
// (false), Created and Updated are set as stored; on failure the tasks are
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
		case strings.IndexByte(t.ID, 0) >= 0:
			return fmt.Errorf("boltstore: create: task %d: id holds a 0x00 byte", i)
		case len(t.ID) > maxKeyLen:
			return fmt.Errorf("boltstore: create: task %d: id is longer than %d bytes", i, maxKeyLen)
		case len(t.Ref) > maxKeyLen:
			return fmt.Errorf("boltstore: create %s: ref is longer than %d bytes", t.ID, maxKeyLen)
		case t.State != "" && t.State != transitions.Initial:
			return fmt.Errorf("boltstore: create %s: state is %s, a new task starts in %s", t.ID, t.State, transitions.Initial)
		}
		if err := persist.ValidateOptions(t.Options); err != nil {
			return fmt.Errorf("boltstore: create %s: %w", t.ID, err)
		}
		c := *t
		c.Params = nil
		c.State = transitions.Initial
		c.Seq = 1
		c.Intent = false
		c.DueAt = c.NextAt
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
		b.params.FillPercent = 0.9
		refs := map[string]bool{}
		for _, p := range preps {
			id := []byte(p.t.ID)
			if b.taskValue(p.t.ID) != nil {
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
			if k, _ := b.history.Cursor().Seek(historyPrefix(p.t.ID)); bytes.HasPrefix(k, historyPrefix(p.t.ID)) {
				// The id check above passed, so a history without a task
				// is left from damage; refuse to mix histories.
				return fmt.Errorf("boltstore: create %s: a history without its task: %w", p.t.ID, persist.ErrNotOurs)
			}
			for _, put := range []struct {
				b    *bbolt.Bucket
				k, v []byte
			}{
				{b.history, historyKey(p.t.ID, 1), p.rec},
				{b.history, taskKey(p.t.ID), p.task},
				{b.params, id, p.params},
				{b.byState, indexKey(p.t.State, p.t.ID), []byte{}},
				{b.due, dueKey(p.t.DueAt, p.t.ID), []byte{}},
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
		t.State, t.Seq, t.Created, t.Updated, t.Intent = p.State, p.Seq, p.Created, p.Updated, false
	}
	return nil
}

// Request states of the group-commit queue.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// applyReq is one Apply waiting for a commit. The caller reads the stored
// task, checks it, and encodes the record and the new task itself, so the
// group-commit goroutine, which all callers share, only has to see that
// the stored task is still the one the caller read (bytes.Equal) before it
// writes.
type applyReq struct {
	task    persist.Task // the new task, Seq the new one, no Params
	from    states.State
	oldSeq  uint64
	oldDue  time.Time // the stored task's DueAt
	stored  []byte    // the stored task as the caller read it
	rec     []byte    // the encoded record
	taskVal []byte    // the encoded new task
	// submitAt is the record's At when its event is SubmitSending (it
	// may raise LastSubmit), else zero.
	submitAt time.Time
	// trusted: the loop checked that the stored task is the value it
	// wrote last itself, the one the caller read (see runBatch).
	trusted bool
	// The keys the commit writes: the record's and the task's, and the
	// index entries to delete and put (nil when the index does not
	// change).
	histKey, taskKey   []byte
	stateDel, statePut []byte
	dueDel, duePut     []byte

	state atomic.Int32
	err   error // set inside the transaction
	done  chan error
	// sample reads the runtime's count of runnable goroutines (see
	// commitInline), kept with the pooled request so reading it does not
	// allocate.
	sample [1]metrics.Sample
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
// State must be rec.To. Ref, Method, Options, Created and Params are kept as stored;
// Intent is set from rec.Event. The by-state and due indexes and
// LastSubmit change in the same transaction.
// A transition that conflicts with the committed task fails at once,
// without queueing. If ctx ends before the request is taken, Apply returns
// ctx's error and nothing is written; once taken, it waits for the
// commit's outcome.
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
	// Tell the group-commit loop a request is on its way.
	s.preparing.Add(1)
	queued := false
	defer func() {
		if !queued {
			s.preparing.Add(-1)
		}
	}()
	r := s.newApplyReq()
	r.task, r.from, r.oldSeq = *t, rec.From, t.Seq
	r.task.Params = nil
	r.task.Seq = t.Seq + 1
	r.task.Intent = transitions.InDoubt(rec.Event)
	rc := *rec
	rc.Seq = r.task.Seq
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
	// Check against the committed task now, on the caller's goroutine: a
	// stale transition fails without queueing, and the loop only compares
	// bytes. The task as the last commit wrote it spares a read.
	if c, ok := s.cache.get(t.ID); ok && c.state == r.from && c.seq == r.oldSeq {
		r.stored, r.oldDue = c.val, c.dueAt
		r.task.Ref, r.task.Method, r.task.Options, r.task.Created = c.ref, c.method, c.options, c.created
	} else {
		err = s.view(ctx, "apply "+t.ID, func(tx *bbolt.Tx) error {
			b, err := bucketsOf(tx)
			if err != nil {
				return err
			}
			v := b.taskValue(t.ID)
			old, err := checkStored(r, v)
			if err != nil {
				return err
			}
			r.stored, r.oldDue = bytes.Clone(v), old.DueAt
			r.task.Ref, r.task.Method, r.task.Options, r.task.Created = old.Ref, old.Method, old.Options, old.Created
			return nil
		})
		if err != nil {
			return err
		}
	}
	r.task.DueAt = r.dueAt()
	if r.taskVal, err = encodeTask(&r.task); err != nil {
		return fmt.Errorf("boltstore: apply %s: %w", t.ID, err)
	}
	r.keys()
	if r.task.Intent {
		r.submitAt = rc.At
	}

	// Read before the lock, and only when no other request is on its way
	// (commitInline checks again under it).
	idle := s.preparing.Load() == 1 && nothingRunnable(r)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: apply %s: %w", t.ID, persist.ErrClosed)
	}
	if s.commitInline(r, idle) {
		queued = true
		s.mu.Unlock()
	} else {
		s.queue = append(s.queue, r)
		s.preparing.Add(-1)
		queued = true
		s.cond.Signal()
		s.mu.Unlock()
		select {
		case s.arrived <- struct{}{}:
		default:
		}
	}

	if ctx.Done() == nil {
		err = <-r.done // a context that never ends: no select to pay for
	} else {
		select {
		case err = <-r.done:
		case <-ctx.Done():
			if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
				// The loop will still see r: it is not reused.
				return fmt.Errorf("boltstore: apply %s: %w", t.ID, ctx.Err())
			}
			err = <-r.done
		}
	}
	if err == nil {
		t.Seq, rec.Seq = r.task.Seq, r.task.Seq
		rec.At = rc.At
		t.Updated = r.task.Updated
		t.Intent = r.task.Intent
	}
	s.releaseApplyReq(r)
	return err
}

// newApplyReq returns a request from the store's pool, which recycles them
// with their channels: a busy engine makes tens of thousands a second. The
// pool is the store's own, not the package's, so that a channel made in a
// testing/synctest bubble (with the store) stays in it.
func (s *Store) newApplyReq() *applyReq {
	r, _ := s.reqs.Get().(*applyReq)
	if r == nil {
		r = &applyReq{done: make(chan error, 1)}
		r.sample[0].Name = runnableMetric
	}
	r.state.Store(reqQueued)
	return r
}

// releaseApplyReq returns r to the pool once its caller has its outcome:
// the loop sent it as its last use of r.
func (s *Store) releaseApplyReq(r *applyReq) {
	r.task = persist.Task{}
	r.from, r.oldSeq, r.oldDue = "", 0, time.Time{}
	r.stored, r.rec, r.taskVal = nil, nil, nil
	r.submitAt, r.trusted = time.Time{}, false
	r.histKey, r.taskKey, r.stateDel, r.statePut, r.dueDel, r.duePut = nil, nil, nil, nil, nil, nil
	r.err = nil
	s.reqs.Put(r)
}

// dueAt returns where the due index is to hold the task after r: nowhere
// (zero) when it settles; where it was while that place stays early for
// its new NextAt (heldEarly: a polled task keeps its entry for a minute of
// polls, sparing the index's pages in most commits); else its NextAt, as
// a wall time (see heldEarly).
func (r *applyReq) dueAt() time.Time {
	switch {
	case !r.task.State.Active():
		return time.Time{}
	case r.from.Active() && heldEarly(r.oldDue, r.task.NextAt):
		return r.oldDue.Round(0)
	default:
		return r.task.NextAt.Round(0)
	}
}

// keys computes the keys r's commit writes, in one allocation. r.task.DueAt
// is set (see dueAt).
func (r *applyReq) keys() {
	id, to := r.task.ID, r.task.State
	wasDue, isDue := r.from.Active(), to.Active()
	same := wasDue && isDue && r.oldDue.Equal(r.task.DueAt)
	size := 2*len(id) + 10
	if to != r.from {
		size += len(r.from) + len(to) + 2*(len(id)+1)
	}
	if !same {
		size += 2 * (timeKeyLen + len(id))
	}
	buf := make([]byte, 0, size)
	// cut ends the key built from start and keeps it from growing into
	// the next one.
	cut := func(start int) []byte { return buf[start:len(buf):len(buf)] }
	start := len(buf)
	buf = append(append(buf, id...), 0)
	buf = binary.BigEndian.AppendUint64(buf, r.task.Seq)
	r.histKey = cut(start)
	start = len(buf)
	buf = append(append(buf, id...), 1)
	r.taskKey = cut(start)
	if to != r.from {
		start = len(buf)
		buf = append(append(append(buf, r.from...), 0), id...)
		r.stateDel = cut(start)
		start = len(buf)
		buf = append(append(append(buf, to...), 0), id...)
		r.statePut = cut(start)
	}
	if wasDue && !same {
		start = len(buf)
		buf = append(appendTimeKey(buf, r.oldDue), id...)
		r.dueDel = cut(start)
	}
	if isDue && !same {
		start = len(buf)
		buf = append(appendTimeKey(buf, r.task.DueAt), id...)
		r.duePut = cut(start)
	}
}
