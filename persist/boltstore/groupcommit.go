package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
)

// The group-commit loop: Apply queues its request; one goroutine gathers
// what is queued and commits it in one bbolt transaction.

// How the group-commit loop lets callers catch up before a commit (see
// gather): it waits for a request being prepared at most idleWait (a
// safety net: the request arrives in microseconds, or its caller failed),
// yields at most idleYields times in a row while no request arrives, and
// gathers for at most maxWait (and maxRounds rounds) in all.
const (
	idleWait   = 250 * time.Microsecond
	maxWait    = 10 * time.Millisecond
	idleYields = 64
	maxRounds  = 1 << 14
)

// runnableMetric counts the goroutines waiting for a CPU (Go 1.26).
const runnableMetric = "/sched/goroutines/runnable:goroutines"

// runnable returns the number of goroutines of the process that wait to
// run: the callers that are about to queue an Apply are among them. It
// costs about 50 ns and allocates nothing.
func runnable(sample []metrics.Sample) uint64 {
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0 // not measured by this runtime: do not wait on it
	}
	return sample[0].Value.Uint64()
}

// queued returns the number of requests waiting.
func (s *Store) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// gather lets the callers that are about to queue a request do so before
// the loop takes the queue, so that they share the commit instead of
// waiting for the next; a lone caller's request is committed at once
// (bbolt's Batch makes it wait 10 ms). last is the size of the last batch.
//
// While a caller is preparing its request (encoding it, checking it
// against the committed task), or while more requests have come than the
// last commit took (a burst: its callers may be held up a moment, by the
// garbage collector for one), the loop waits, parked, for the next
// request, at most idleWait: parked, so that its CPU runs the callers.
// Else, while any goroutine of the process waits to run (it may be a
// caller that has not reached Apply yet), it yields, until the queue has
// not grown for idleYields yields; with nothing runnable it stops at once.
// It sleeps on a timer only while requests are arriving, so that in a
// testing/synctest bubble a lone caller's commit takes no virtual time.
func (s *Store) gather(sample []metrics.Sample, idle *time.Timer, last int) {
	deadline := time.Now().Add(maxWait)
	n, still := s.queued(), 0
	for range maxRounds {
		if !time.Now().Before(deadline) {
			return
		}
		if s.preparing.Load() > 0 || (n > last && n > 1) {
			// A request is on its way, or more requests than the last
			// commit took have come: a burst, whose callers may be held
			// up a moment (by the garbage collector, for one). Wait,
			// parked, for the next.
			idle.Reset(idleWait)
			select {
			case <-s.arrived:
				idle.Stop() // since Go 1.23 no stale tick is left behind
			case <-idle.C:
				if s.preparing.Load() == 0 && s.queued() == n {
					return // none for idleWait
				}
			}
			n, still = s.queued(), 0
			continue
		}
		if runnable(sample) == 0 {
			return
		}
		if q := s.queued(); q != n {
			n, still = q, 0
		} else if still++; still >= idleYields {
			return
		}
		runtime.Gosched()
	}
}

// loop is the group-commit goroutine: it lets the callers on their way
// catch up (gather), then takes all queued requests at once and commits
// them in one transaction.
func (s *Store) loop() {
	defer close(s.loopDone)
	debug.SetPanicOnFault(true)
	var batch []*applyReq
	sample := []metrics.Sample{{Name: runnableMetric}}
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	last := 0 // the size of the last batch
	for {
		s.mu.Lock()
		s.waitForWork()
		s.mu.Unlock()
		s.gather(sample, idle, last)
		s.mu.Lock()
		s.waitForWork()
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
		s.committing = true
		s.mu.Unlock()
		last = len(batch)
		s.commit(batch)
		clear(batch)
		s.mu.Lock()
		s.committing = false
		s.cond.Broadcast() // Close may wait for the commit
		s.mu.Unlock()
	}
}

// waitForWork waits, with s.mu held, until requests are queued and no
// caller is committing its own (see commitInline), or the store closes.
func (s *Store) waitForWork() {
	for (len(s.queue) == 0 || s.committing) && !s.closed {
		s.cond.Wait()
	}
}

// nothingRunnable reports whether no goroutine of the process waits to
// run (a variable for tests).
var nothingRunnable = func(r *applyReq) bool { return runnable(r.sample[:]) == 0 }

// commitInline commits r on its caller's goroutine when nothing else is
// on its way: no request queued or being prepared, no commit running, no
// goroutine waiting to run (it may be a caller about to apply). A lone
// transition then costs no hand-over to the loop and back, two wake-ups
// of another thread that cost a lone commit more CPU than its puts. It
// reports false, having done nothing, when r must be queued instead;
// s.mu is held on entry and on return.
func (s *Store) commitInline(r *applyReq, idle bool) bool {
	if !idle || s.committing || len(s.queue) > 0 || s.preparing.Load() != 1 {
		return false
	}
	s.committing = true
	s.preparing.Add(-1)
	s.inline.Add(1)
	s.mu.Unlock()
	s.commit([]*applyReq{r})
	s.mu.Lock()
	s.committing = false
	// Requests queued meanwhile wait for the loop; Close may wait too.
	s.cond.Broadcast()
	return true
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
		if err == nil {
			s.cache.update(live)
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
//
// The writes go bucket by bucket in key order (requests sorted by task
// id), so that each bucket's tree is walked once, in order. A request whose
// stored task a commit of this store wrote last (its caller took it from
// the cache, and the cache still holds that very value) needs no read:
// only these commits, one at a time (the loop's, or a lone caller's: see
// commitInline), write a task in flight, and the cache keeps no settled one
// (which Prune could delete). Of several requests for one task in a batch
// the first queued wins; the others were computed from the value it
// replaces, and conflict.
func (s *Store) runBatch(live []*applyReq) (failed int, err error) {
	failed = -1
	defer func() {
		if r := recover(); r != nil {
			failed, err = -1, errCorrupt("apply", r)
		}
	}()
	// A damaged page faults: make it a panic recovered above, on whichever
	// goroutine commits (the loop's, or a lone caller's: commitInline).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	s.cache.markTrusted(live)
	withState := slices.ContainsFunc(live, func(r *applyReq) bool { return r.stateDel != nil })
	ok := make([]*applyReq, 0, len(live))
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b, err := applyBuckets(tx, withState)
		if err != nil {
			return err
		}
		ok = ok[:0]
		for _, r := range live {
			r.err = nil
			if !r.trusted {
				r.err = checkApply(b, r)
			}
			if r.err == nil {
				ok = append(ok, r)
			}
		}
		slices.SortStableFunc(ok, func(x, y *applyReq) int { return strings.Compare(x.task.ID, y.task.ID) })
		n := 0
		for i, r := range ok {
			if i > 0 && r.task.ID == ok[i-1].task.ID {
				r.err = fmt.Errorf("boltstore: apply %s: another transition of the task at seq %d came first: %w",
					r.task.ID, r.oldSeq, persist.ErrConflict)
				continue
			}
			ok[n] = r
			n++
		}
		ok = ok[:n]
		if len(ok) == 0 {
			return errNothingWritten
		}
		if r, err := writeBatch(b, ok); err != nil {
			failed = slices.Index(live, r)
			return fmt.Errorf("boltstore: apply %s: %w", r.task.ID, err)
		}
		var lastSubmit time.Time
		for _, r := range ok {
			if r.submitAt.After(lastSubmit) {
				lastSubmit = r.submitAt
			}
		}
		if lastSubmit.IsZero() {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("boltstore: a bucket is missing: %w", persist.ErrNotOurs)
		}
		return raiseLastSubmit(meta, lastSubmit)
	})
	switch {
	case errors.Is(err, errNothingWritten):
		err = nil
	case err == nil:
		s.commits.Add(1)
	}
	return failed, err
}

// writeBatch writes the requests ok (sorted by task id, one per task):
// each task's record and the task, which follow each other in the
// history bucket (one leaf, mostly), then the index entries that change,
// each bucket in key order. It returns the request whose write failed,
// with the error.
func writeBatch(b buckets, ok []*applyReq) (*applyReq, error) {
	for _, r := range ok {
		if err := b.history.Put(r.histKey, r.rec); err != nil {
			return r, err
		}
		if err := b.history.Put(r.taskKey, r.taskVal); err != nil {
			return r, err
		}
	}
	type entry struct {
		r   *applyReq
		key []byte
	}
	var dels, puts []entry
	for _, r := range ok {
		if r.stateDel != nil {
			dels = append(dels, entry{r, r.stateDel})
			puts = append(puts, entry{r, r.statePut})
		}
	}
	byKey := func(x, y entry) int { return bytes.Compare(x.key, y.key) }
	slices.SortFunc(dels, byKey)
	slices.SortFunc(puts, byKey)
	for _, e := range dels {
		if err := b.byState.Delete(e.key); err != nil {
			return e.r, err
		}
	}
	for _, e := range puts {
		if err := b.byState.Put(e.key, []byte{}); err != nil {
			return e.r, err
		}
	}
	dels, puts = dels[:0], puts[:0]
	for _, r := range ok {
		if r.dueDel != nil {
			dels = append(dels, entry{r, r.dueDel})
		}
		if r.duePut != nil {
			puts = append(puts, entry{r, r.duePut})
		}
	}
	slices.SortFunc(dels, byKey)
	slices.SortFunc(puts, byKey)
	for _, e := range dels {
		if err := b.due.Delete(e.key); err != nil {
			return e.r, err
		}
	}
	for _, e := range puts {
		if err := b.due.Put(e.key, []byte{}); err != nil {
			return e.r, err
		}
	}
	return nil, nil
}

// checkStored checks the stored task v against the transition r and
// returns it decoded.
func checkStored(r *applyReq, v []byte) (*persist.Task, error) {
	if v == nil {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, persist.ErrNotFound)
	}
	old, err := decodeTaskDue(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, err)
	}
	if old.ID != r.task.ID {
		return nil, fmt.Errorf("boltstore: apply %s: %w", r.task.ID, damaged("stored task says its id is %s", old.ID))
	}
	if old.State != r.from || old.Seq != r.oldSeq {
		return nil, fmt.Errorf("boltstore: apply %s: stored task is %s at seq %d, the transition is from %s at seq %d: %w",
			r.task.ID, old.State, old.Seq, r.from, r.oldSeq, persist.ErrConflict)
	}
	return old, nil
}

// checkApply checks, inside the commit's transaction, that the stored task
// is still the one r's caller read.
func checkApply(b buckets, r *applyReq) error {
	v := b.taskValue(r.task.ID)
	if !bytes.Equal(v, r.stored) {
		// Every write of a task raises its seq, so this is a conflict (or
		// the task was pruned); checkStored says which.
		if _, err := checkStored(r, v); err != nil {
			return err
		}
		return fmt.Errorf("boltstore: apply %s: stored task changed at seq %d: %w", r.task.ID, r.oldSeq, persist.ErrConflict)
	}
	return nil
}

// raiseLastSubmit stores at as LastSubmit if it is later than the stored
// one.
func raiseLastSubmit(meta *bbolt.Bucket, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	if old, ok := decodeTime(meta.Get(keyLastSubmit)); ok && !at.After(old) {
		return nil
	}
	return meta.Put(keyLastSubmit, timeKey(at))
}
