package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// Paging: a lone engine holds in memory only the tasks due soon, as a job
// queue keeps a scheduled set. At Open it reads the store's due-time index
// (persist.Store.Due) for the tasks due within the page window, earliest
// first, up to its bound, and acts at once; a pager goroutine reads more
// when the tasks in memory run low or the next ones fall due. A task due
// in an hour, a thousand behind the bound or banned for ten minutes stays
// on disk until then. (In a fleet, engines claim their tasks instead.)

const (
	// defaultPageWindow is how far ahead the engine loads due tasks.
	defaultPageWindow = time.Minute
	// defaultMaxHeld is the least bound on the tasks held in memory; it is
	// 20 × Policy.Concurrency when that is more.
	defaultMaxHeld = 10_000
)

// pager reads due tasks into the engine.
type pager struct {
	window  time.Duration
	maxHeld int
	wake    chan struct{}
}

// kick makes the pager look at the store again.
func (p *pager) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pageSize is how many index entries one read of the pager takes.
const pageSize = 1000

// page loads the tasks due within the window that the engine does not
// hold, up to its bound, and returns when the next task not loaded falls
// into the window (zero: none is left in the store), or full when the
// bound is reached and the pager waits for room.
func (e *Engine) page(ctx context.Context) (next time.Time, full bool, err error) {
	p := e.pager
	room := p.maxHeld - e.reg.len()
	if room <= 0 {
		return time.Time{}, true, nil
	}
	until := time.Now().Add(p.window)
	var fresh []*persist.Task
	err = e.scanDue(ctx, persist.DueCursor{}, until, func(t *persist.Task) bool {
		fresh = append(fresh, t)
		full = len(fresh) == room
		return !full
	})
	e.adopt(fresh)
	if err != nil || full {
		return time.Time{}, full, err // full: paged again when room is made
	}
	// Everything due within the window is held: when does the next fall
	// due?
	err = e.scanDue(ctx, persist.DueCursor{At: until, ID: "\xff"}, time.Time{}, func(t *persist.Task) bool {
		next = dueAt(t).Add(-p.window / 2) // DueAt ≤ NextAt: never late
		return false
	})
	return next, false, err
}

// scanDue calls fn with the active tasks the engine does not hold, after
// cursor in due-time order (up to until, when set), until fn returns
// false. A task that leaves the engine while a page is read (it settled)
// may show as it was, and is passed over: taken in, it would act on a
// stale copy.
func (e *Engine) scanDue(ctx context.Context, cursor persist.DueCursor, until time.Time, fn func(*persist.Task) bool) error {
	for {
		e.reg.beginRead()
		list, err := e.store.Due(ctx, persist.DueOptions{After: cursor, Until: until, Limit: pageSize})
		if err != nil {
			e.reg.endRead()
			return fmt.Errorf("engine: page due tasks: %w", err)
		}
		// Judged before the read ends: a task that leaves between the
		// read and its judgement is still seen leaving.
		var fresh []*persist.Task
		for _, t := range list {
			if e.reg.unknown(t.ID) {
				fresh = append(fresh, t)
			}
		}
		e.reg.endRead()
		for _, t := range fresh {
			if !fn(t) {
				return nil
			}
		}
		if len(list) < pageSize {
			return nil
		}
		last := list[len(list)-1]
		cursor = persist.DueCursor{At: dueAt(last), ID: last.ID}
	}
}

// dueAt returns where the store's due index holds t: its DueAt, or its
// NextAt from a store that leaves DueAt zero (one written before DueAt
// existed; under the contract a zero DueAt goes with a zero NextAt), so
// that such a store's pages still advance.
func dueAt(t *persist.Task) time.Time {
	if t.DueAt.IsZero() {
		return t.NextAt
	}
	return t.DueAt
}

// pagerLoop pages tasks in until the engine shuts down: when the next
// ones fall into the window, when kicked (tasks left out of memory by
// SubmitMany) and, while the bound is reached, when the tasks held fall
// below half of it.
func (e *Engine) pagerLoop(next time.Time, full bool) {
	defer e.wg.Done()
	p := e.pager
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		var changed chan struct{} // nil: not waited on
		if full {
			_, _, changed = e.reg.activity()
		}
		select {
		case <-timer.C:
		case <-p.wake:
		case <-changed:
			if e.reg.len() > p.maxHeld/2 {
				continue
			}
		case <-e.done:
			return
		}
		var err error
		if next, full, err = e.page(e.ctx); err != nil {
			e.log.Error("page due tasks", "err", err)
			next = time.Now().Add(time.Second)
		}
	}
}

// storeHasActive reports whether the store holds an active task the engine
// does not hold (one it has not paged in yet).
func (e *Engine) storeHasActive(ctx context.Context) (bool, error) {
	found := false
	err := e.scanDue(ctx, persist.DueCursor{}, time.Time{}, func(*persist.Task) bool {
		found = true
		return false
	})
	return found, err
}

// loadParked takes the store's parked tasks into the engine, with the
// breaker open: the account was not fixed when the engine stopped.
func (e *Engine) loadParked(ctx context.Context) (int, error) {
	n := 0
	err := e.store.Scan(ctx, persist.ListOptions{States: []states.State{states.NeedsAccountFix}}, func(t *persist.Task) error {
		e.reg.add(newTask(t))
		e.brk.trip(t.Code)
		n++
		return nil
	})
	return n, err
}
