package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/transitions"
)

// The public operations on tasks: submit, wait, cancel, audit.

// Submit validates req, stores it as a new task (durable when Submit
// returns) and schedules it. It returns the task id. Bad input is refused
// before anything is stored or sent. A request whose Ref names a stored
// task attaches to it (see Request.IfRefExists); Enqueue says whether it
// did.
func (e *Engine) Submit(ctx context.Context, req Request) (string, error) {
	sub, err := e.Enqueue(ctx, req)
	return sub.ID, err
}

// Submission is what Enqueue did with a request.
type Submission struct {
	// ID is the task's id: a new task's, or the stored one's it attached
	// to.
	ID string
	// Attached is set when the request's Ref named a stored task of the
	// same request: no task was added, and the stored task (with its own
	// options) is the one to wait for.
	Attached bool
}

// Enqueue is Submit, and says whether the request attached to a stored
// task by its Ref instead of adding one.
func (e *Engine) Enqueue(ctx context.Context, req Request) (Submission, error) {
	subs, err := e.submit(ctx, []Request{req})
	if err != nil {
		return Submission{}, err
	}
	return subs[0], nil
}

// SubmitMany validates every request, then stores the new ones in one
// transaction and schedules them. A request whose Ref is already in the
// store with the same method and parameters adds no task: it attaches to
// the existing one, whose id is returned (a restarted bot collects its
// answers that way), unless its IfRefExists is RefUnique. A Ref that names
// a task with another method or other parameters is an error wrapping
// ErrRefConflict (ErrRefExists with RefUnique), before anything is stored
// or sent. It returns the ids in request order and how many tasks were
// added.
func (e *Engine) SubmitMany(ctx context.Context, reqs []Request) (ids []string, added int, err error) {
	subs, err := e.submit(ctx, reqs)
	if err != nil {
		return nil, 0, err
	}
	ids = make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
		if !s.Attached {
			added++
		}
	}
	return ids, added, nil
}

// submit is Enqueue and SubmitMany: it validates every request, then
// stores the new ones in one transaction and schedules them.
func (e *Engine) submit(ctx context.Context, reqs []Request) ([]Submission, error) {
	for i, r := range reqs {
		if err := r.validate(); err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("engine: request %d: %w", i+1, err)
			}
			return nil, err
		}
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	now := time.Now()
	// Refs are looked up only when the store holds one already: Create
	// refuses a ref it holds (all or none), and a batch of new refs, the
	// common case, costs no read per request.
	subs, fresh, err := e.plan(ctx, reqs, now, false)
	if err != nil {
		return nil, err // two requests of the batch with one ref
	}
	if len(fresh) == 0 {
		return subs, nil
	}
	err = e.store.Create(ctx, fresh...)
	if errors.Is(err, persist.ErrDuplicateRef) {
		if subs, fresh, err = e.plan(ctx, reqs, now, true); err != nil {
			return nil, err
		}
		if len(fresh) == 0 {
			return subs, nil
		}
		err = e.store.Create(ctx, fresh...)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: submit: %w", err)
	}
	left := false
	for _, t := range fresh {
		if e.pager != nil && e.reg.len() >= e.pager.maxHeld {
			left = true // on disk, due now: the pager brings it in
			continue
		}
		t.Params = nil // loaded again at submit time: memory stays small
		// The pager may have taken it in already, from the store.
		if tk := newTask(t); e.reg.add(tk) {
			e.sched.push(tk)
		}
	}
	if left {
		e.pager.kick()
	}
	return subs, nil
}

// plan turns reqs into what submit returns and the tasks it stores.
// Requests that share a Ref share a task. With lookup, a Ref already in
// the store attaches its request to the stored task (or is refused, as
// submit says); without, every Ref is taken to be new.
func (e *Engine) plan(ctx context.Context, reqs []Request, now time.Time, lookup bool) (subs []Submission, fresh []*persist.Task, err error) {
	subs = make([]Submission, len(reqs))
	seenRef := map[string]*persist.Task{}
	for i, r := range reqs {
		if r.Ref != "" {
			old, ok := seenRef[r.Ref]
			if !ok && lookup {
				old, err = e.store.GetByRef(ctx, r.Ref)
				if err != nil && !errors.Is(err, persist.ErrNotFound) {
					return nil, nil, fmt.Errorf("engine: submit: %w", err)
				}
			}
			if old != nil {
				if r.IfRefExists == RefUnique {
					return nil, nil, fmt.Errorf("%w: ref %q is task %s (%s); the request asks for a new task (RefUnique)",
						ErrRefExists, r.Ref, old.ID, old.State)
				}
				if old.Method != r.Method || !maps.Equal(old.Params, r.Params) {
					return nil, nil, fmt.Errorf("%w: ref %q is task %s, a %s request with other parameters; "+
						"use another ref, or the same request to attach to that task", ErrRefConflict, r.Ref, old.ID, old.Method)
				}
				subs[i] = Submission{ID: old.ID, Attached: true}
				seenRef[r.Ref] = old
				continue
			}
		}
		t := NewTask(r, now)
		if e.fleet != nil {
			t.Owner, t.LeaseUntil = e.fleet.owner, now.Add(e.fleet.ttl)
		}
		fresh = append(fresh, t)
		subs[i] = Submission{ID: t.ID}
		if r.Ref != "" {
			seenRef[r.Ref] = t
		}
	}
	return subs, fresh, nil
}

// NewTask returns the task a request becomes, due at once, with a new id,
// its own copy of the parameters and the request's options: what
// SubmitMany stores, for a program that records requests itself (the CLI
// records a large file in chunks before it starts an engine). It does not
// validate r.
func NewTask(r Request, now time.Time) *persist.Task {
	params := make(map[string]string, len(r.Params))
	for k, v := range r.Params {
		params[k] = v
	}
	opts := r.options()
	opts.Labels = maps.Clone(opts.Labels) // the caller may change its map; the task's never changes
	return &persist.Task{ID: persist.NewID(), Ref: r.Ref, Method: r.Method, Params: params, Options: opts,
		State: transitions.Initial, Created: now, Updated: now, NextAt: now}
}

// Wait blocks until the task (named by its id or its ref) is terminal or
// parked in NeedsAccountFix, or ctx is done. A Done task gives its view
// (its Token); any other end gives the view and a *TaskError. When ctx
// ends first, the task goes on and Wait returns a *PendingError: ctx
// bounds the wait, never the task.
//
// Wait by ref is how a bot collects what it submitted before a restart:
// submit each request again with its ref (it attaches to the stored task)
// or keep the refs, and Wait for each.
func (e *Engine) Wait(ctx context.Context, key string) (*Task, error) {
	id, err := e.resolve(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("engine: wait %s: %w", key, err)
	}
	for {
		snap, ch, held := e.reg.watch(id)
		if ch != nil {
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				if tk := e.reg.get(id); tk != nil {
					snap = tk.cur()
				}
				return nil, &PendingError{ID: snap.ID, Ref: snap.Ref, State: snap.State, Err: ctx.Err()}
			case <-e.done:
				return nil, ErrClosed
			}
		}
		if held {
			return resultOf(snap)
		}
		t, err := e.store.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("engine: wait %s: %w", id, err)
		}
		if t.State.Settled() {
			return resultOf(t)
		}
		if e.fleet == nil {
			v := TaskOf(t)
			v.Params = nil
			return &v, fmt.Errorf("engine: wait %s: task is %s and not driven by this engine", id, t.State)
		}
		// Another engine of the fleet drives it: watch the store.
		select {
		case <-time.After(e.fleet.every):
		case <-ctx.Done():
			return nil, &PendingError{ID: t.ID, Ref: t.Ref, State: t.State, Err: ctx.Err()}
		case <-e.done:
			return nil, ErrClosed
		}
	}
}

// Solve submits req and waits for its outcome, as Submit then Wait. When
// ctx ends first, Solve stops waiting and returns a *PendingError: the
// task, durable and maybe paid for already, goes on, and Wait collects it
// later. To stop a task, Cancel it.
func (e *Engine) Solve(ctx context.Context, req Request) (*Task, error) {
	id, err := e.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return e.Wait(ctx, id)
}

// resolve returns the id of the task key names: its id, else its ref.
func (e *Engine) resolve(ctx context.Context, key string) (string, error) {
	if e.reg.get(key) != nil {
		return key, nil
	}
	t, err := persist.Find(ctx, e.store, key)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// Cancel ends the task (named by its id or ref) in Failed with code
// CANCELLED. A request in flight for it completes first; its answer is
// recorded, then the task is cancelled if it is not terminal by then.
func (e *Engine) Cancel(ctx context.Context, key string) error {
	id, err := e.resolve(ctx, key)
	if err != nil {
		return fmt.Errorf("engine: cancel %s: %w", key, err)
	}
	tk := e.reg.get(id)
	if tk == nil {
		return fmt.Errorf("engine: cancel %s: %w", key, ErrNotCancellable)
	}
	if tk.cur().State.Settled() {
		return fmt.Errorf("engine: cancel %s: %w", id, ErrNotCancellable)
	}
	if !e.sched.claim(tk, true) {
		return nil // its worker's release cancels it
	}
	if tk.cur().State.Settled() { // settled between the look and the claim
		e.release(tk)
		return fmt.Errorf("engine: cancel %s: %w", id, ErrNotCancellable)
	}
	err = e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Cancel})
	e.release(tk)
	return err
}

// Get returns the stored task named by its id or its ref, with its Params.
func (e *Engine) Get(ctx context.Context, key string) (*Task, error) {
	t, err := persist.Find(ctx, e.store, key)
	if err != nil {
		return nil, err
	}
	v := TaskOf(t)
	return &v, nil
}

// List returns stored tasks (without Params), in creation order: for
// small results (opts.Limit and opts.After page through the store).
func (e *Engine) List(ctx context.Context, opts persist.ListOptions) ([]*Task, error) {
	list, err := e.store.List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := make([]*Task, len(list))
	views := make([]Task, len(list))
	for i, t := range list {
		views[i] = TaskOf(t)
		out[i] = &views[i]
	}
	return out, nil
}

// History returns the transitions of the task named by its id or its ref.
func (e *Engine) History(ctx context.Context, key string) ([]persist.Record, error) {
	id, err := e.resolve(ctx, key)
	if err != nil {
		return nil, err
	}
	return e.store.History(ctx, id)
}

// Subscribe returns a channel that receives every committed transition, and
// a function that ends the subscription (it closes the channel). The
// engine never waits for a subscriber: a transition that finds the
// channel's buf slots full is dropped for this subscriber (the engine goes
// on), so a subscriber that falls behind misses transitions; a gap in a
// task's Transition.Record.Seq shows one, and History has them all. The
// transitions of one task arrive in order. Use OnTransition to see every
// one.
func (e *Engine) Subscribe(buf int) (<-chan Transition, func()) { return e.reg.subscribe(buf) }

// Drain blocks until no task is left for the engine to drive: every task it
// knows is terminal or parked in NeedsAccountFix while the breaker is open
// (a task parked while the breaker is closed is about to be released).
func (e *Engine) Drain(ctx context.Context) error {
	if e.fleet != nil {
		return e.drainFleet(ctx)
	}
	for {
		active, parked, changed := e.reg.activity()
		open, flipped := e.brk.watch()
		if active == 0 && (parked == 0 || open) {
			// Tasks not paged in yet are still to drive.
			more, err := e.storeHasActive(ctx)
			if err != nil {
				return fmt.Errorf("engine: drain: %w", err)
			}
			if !more {
				return nil
			}
			e.pager.kick()
		}
		select {
		case <-changed:
		case <-flipped:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return ErrClosed
		}
	}
}

// drainFleet waits until no task of the shared store is left to drive, by
// this engine or any other (a dead engine's tasks are taken over).
func (e *Engine) drainFleet(ctx context.Context) error {
	tick := time.NewTicker(e.fleet.every)
	defer tick.Stop()
	for {
		if mine, _, _ := e.reg.activity(); mine == 0 {
			n, err := e.storeActive(ctx)
			if err != nil {
				return fmt.Errorf("engine: drain: %w", err)
			}
			if n == 0 {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return ErrClosed
		}
	}
}
