package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// AccountFixed closes the breaker and moves every NeedsAccountFix task back
// to Submitting. It returns how many tasks it released: every task parked
// when it was called. A task a worker had just parked and still holds is
// released by that worker as it lets go (through the same move), and
// counted here; Drain waits for it.
func (e *Engine) AccountFixed(ctx context.Context) (int, error) {
	return e.AccountFixedBecause(ctx, "")
}

// AccountFixedBecause is AccountFixed noting why in each released task's
// history (the detail of its account_fixed record; "" says "account
// fixed"): a program that checked the account itself, as the CLI does
// with a getbalance when it starts on parked tasks, says how it knows.
func (e *Engine) AccountFixedBecause(ctx context.Context, why string) (int, error) {
	n, err := e.releaseParked(ctx, why)
	if e.fleet != nil {
		// Parked tasks of a shared store belong to no engine: release them
		// in the store (this closes the fleet's breaker too); any engine
		// claims them next.
		m, ferr := releaseAccountFix(ctx, e.store, why)
		n += m
		err = errors.Join(err, ferr)
	}
	e.log.Info("account fixed", "released", n, "why", why)
	return n, err
}

// releaseParked closes the breaker and releases the tasks parked in
// memory, noting why in each history (detail, else "account fixed"). A
// task another goroutine holds is queued by the scheduler when it is given
// back (the breaker is closed), and a worker releases it. A release whose
// commit fails is queued the same way and tried again.
func (e *Engine) releaseParked(ctx context.Context, detail string) (int, error) {
	e.brk.reset()
	n := 0
	var errs []error
	for _, tk := range e.reg.parked() {
		if !e.sched.claim(tk, false) {
			n++ // its owner's release queues it
			continue
		}
		if tk.cur().State != states.NeedsAccountFix {
			n++ // released meanwhile by the worker that held it
			e.release(tk)
			continue
		}
		if err := e.unpark(ctx, tk, detail); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
		e.release(tk)
	}
	e.sched.kick()
	return n, errors.Join(errs...)
}

// unpark is the one move out of NeedsAccountFix an engine makes, whether a
// person fixed the account or a worker finds a task parked while the
// breaker closed. The caller owns tk.
func (e *Engine) unpark(ctx context.Context, tk *task, detail string) error {
	return e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Fixed, Detail: detail})
}

// ReleaseAccountFix moves every NeedsAccountFix task of store back to
// Submitting without an engine running (the CLI's account-fixed). The next
// engine opened on the store drives them. Each move is decided by the
// decision table and built by fsm.Apply, as the engine's are.
func ReleaseAccountFix(ctx context.Context, store persist.Store) (int, error) {
	return releaseAccountFix(ctx, store, "")
}

// releaseAccountFix is ReleaseAccountFix noting why in each history
// (detail, else "account fixed").
func releaseAccountFix(ctx context.Context, store persist.Store, detail string) (int, error) {
	if f, ok := store.(persist.Fleet); ok {
		if err := f.SetBreaker(ctx, false, ""); err != nil {
			return 0, fmt.Errorf("engine: account fixed: close the fleet's breaker: %w", err)
		}
	}
	list, err := store.List(ctx, persist.ListOptions{States: []states.State{states.NeedsAccountFix}})
	if err != nil {
		return 0, fmt.Errorf("engine: account fixed: %w", err)
	}
	n := 0
	for _, t := range list {
		d, err := transitions.Decide(transitions.Input{State: t.State, What: transitions.Fixed, Detail: detail, Now: time.Now()})
		if err != nil {
			return n, err
		}
		next, rec, err := fsm.Apply(t, d)
		if err != nil {
			return n, err
		}
		if err := store.Apply(ctx, next, rec); err != nil {
			return n, fmt.Errorf("engine: account fixed: task %s: %w", t.ID, err)
		}
		n++
	}
	return n, nil
}
