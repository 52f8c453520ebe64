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
// to Submitting. It returns how many tasks it released.
func (e *Engine) AccountFixed(ctx context.Context) (int, error) {
	e.brk.reset()
	parked := e.sched.claimParked(e.reg.all())
	n := 0
	var errs []error
	for _, tk := range parked {
		if err := e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Fixed}); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
		e.release(tk)
	}
	if e.fleet != nil {
		// Parked tasks of a shared store belong to no engine: release them
		// in the store (this closes the fleet's breaker too); any engine
		// claims them next.
		m, err := ReleaseAccountFix(ctx, e.store)
		n += m
		errs = append(errs, err)
	}
	e.log.Info("account fixed", "released", n)
	return n, errors.Join(errs...)
}

// ReleaseAccountFix moves every NeedsAccountFix task of store back to
// Submitting without an engine running (the CLI's account-fixed). The next
// engine opened on the store drives them. Each move is decided by the
// decision table and built by fsm.Apply, as the engine's are.
func ReleaseAccountFix(ctx context.Context, store persist.Store) (int, error) {
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
		d, err := transitions.Decide(transitions.Input{State: t.State, What: transitions.Fixed, Now: time.Now()})
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
