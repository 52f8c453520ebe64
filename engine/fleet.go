package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Fleet mode: when the store is a persist.Leaser (several engines on one
// database), the engine drives only the tasks it holds a lease on. It
// claims due tasks, renews its leases while it works, drops tasks whose
// lease another engine took over, and shares the breaker, bans and submit
// rate through persist.Fleet when the store offers it.

const defaultLeaseTTL = 30 * time.Second

// claimLimits are how many tasks one claim takes and how many the engine
// holds at most: enough to keep its workers and batches busy, few enough
// that the engines of a fleet share the work and a dead engine strands
// little of it until its leases expire.
func (e *Engine) claimLimits() (batch, held int) {
	return 2 * e.pol.Concurrency, 10 * e.pol.Concurrency
}

// defaultOwner names this engine in leases: host, process and a random
// suffix, so two engines in one process differ too.
func defaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

// fleetLoop claims and renews leases and follows the fleet's conditions
// until the engine shuts down.
func (e *Engine) fleetLoop() {
	defer e.wg.Done()
	lastRenew := time.Now()
	for {
		e.syncFleet()
		if time.Since(lastRenew) >= e.leaseTTL/3 {
			e.renew()
			lastRenew = time.Now()
		}
		e.claim()
		// Jittered, so that engines started together do not claim in step
		// (the first of each round would take everything).
		wait := time.Duration(float64(e.fleetEvery) * (0.7 + 0.6*rand.Float64()))
		select {
		case <-time.After(wait):
		case <-e.done:
			return
		}
	}
}

// claim leases due tasks the engine can take.
func (e *Engine) claim() {
	batch, held := e.claimLimits()
	e.mu.Lock()
	room := min(held-len(e.tasks), batch)
	breaker := e.breaker
	e.mu.Unlock()
	if room <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	got, err := e.leaser.Claim(ctx, e.owner, room, e.leaseTTL)
	if err != nil {
		e.log.Error("claim tasks", "err", err)
		return
	}
	if len(got) == 0 {
		return
	}
	if err := e.adopt(ctx, got); err != nil {
		e.log.Error("adopt claimed tasks", "err", err)
	}
	if breaker {
		e.kick()
	}
}

// adopt takes tasks into the engine's care, as resume does: a Submitting
// task whose history ends with the intent to submit is marked, so that its
// possibly charged submit is recorded before it is sent again.
func (e *Engine) adopt(ctx context.Context, list []*persist.Task) error {
	var ready []*task
	var errs []error
	for _, t := range list {
		tk := &task{t: t, idx: -1}
		if t.State == states.Submitting {
			hist, err := e.store.History(ctx, t.ID)
			if err != nil {
				errs = append(errs, fmt.Errorf("task %s: %w", t.ID, err))
				continue
			}
			if n := len(hist); n > 0 && transitions.InDoubt(hist[n-1].Event) {
				tk.intent = true
			}
		}
		ready = append(ready, tk)
	}
	e.mu.Lock()
	for _, tk := range ready {
		if _, held := e.tasks[tk.t.ID]; held || e.closed {
			continue
		}
		e.tasks[tk.t.ID] = tk
		e.addActiveLocked(1)
		e.pushLocked(tk)
	}
	e.mu.Unlock()
	e.kick()
	return errors.Join(errs...)
}

// renew extends the engine's leases and lets go of tasks another engine
// took over after a lease expired.
func (e *Engine) renew() {
	e.mu.Lock()
	ids := make([]string, 0, len(e.tasks))
	for id := range e.tasks {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	lost, err := e.leaser.Renew(ctx, e.owner, ids, e.leaseTTL)
	if err != nil {
		e.log.Error("renew leases", "err", err)
		return
	}
	e.mu.Lock()
	for _, id := range lost {
		tk, ok := e.tasks[id]
		if !ok {
			continue
		}
		e.log.Warn("lease lost: task taken over by another engine", keyTask, id)
		tk.lost = true
		if !tk.busy {
			e.dropLocked(tk)
		}
	}
	e.mu.Unlock()
}

// dropLocked forgets a task the engine no longer drives.
func (e *Engine) dropLocked(tk *task) {
	e.removeLocked(tk)
	// Waiters go back to watching the store, where the new owner's moves
	// land.
	for _, ch := range e.waiters[tk.t.ID] {
		close(ch)
	}
	delete(e.waiters, tk.t.ID)
	if _, ok := e.tasks[tk.t.ID]; ok {
		delete(e.tasks, tk.t.ID)
		if !tk.t.State.Settled() {
			e.addActiveLocked(-1)
		}
	}
}

// syncFleet follows the fleet-wide breaker and pauses.
func (e *Engine) syncFleet() {
	if e.fleet == nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	c, err := e.fleet.Conditions(ctx)
	if err != nil {
		e.log.Error("fleet conditions", "err", err)
		return
	}
	e.mu.Lock()
	opened := c.BreakerOpen && !e.breaker
	republish := ""
	switch {
	case c.BreakerOpen:
		e.breaker, e.fleetSawOpen = true, true
	case e.breaker && e.fleetSawOpen:
		// Closed in the fleet after it was open there: a person ran
		// account-fixed somewhere.
		e.breaker, e.fleetSawOpen = false, false
	case e.breaker:
		// Opened here but not (yet) in the fleet — its SetBreaker failed
		// or lost the race with this read: never close it on that
		// account; publish it again.
		republish = e.breakerCode
	}
	if c.SubmitUntil.After(e.pauseSubmit) {
		e.pauseSubmit = c.SubmitUntil
	}
	if c.PollUntil.After(e.pausePoll) {
		e.extendPollPauseLocked(c.PollUntil)
	}
	e.mu.Unlock()
	if republish != "" {
		if err := e.fleet.SetBreaker(ctx, true, republish); err != nil {
			e.log.Error("open the fleet's breaker", keyCode, republish, "err", err)
		}
	}
	if opened {
		e.log.Warn("breaker opened by another engine", keyCode, c.BreakerCode)
		e.kick()
	}
}

// releaseLeases gives up every lease at shutdown so that other engines can
// take the tasks at once.
func (e *Engine) releaseLeases() {
	if e.leaser == nil {
		return
	}
	e.mu.Lock()
	ids := make([]string, 0, len(e.tasks))
	for id := range e.tasks {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.pol.RequestTimeout)
	defer cancel()
	if err := e.leaser.Release(ctx, e.owner, ids); err != nil {
		e.log.Error("release leases", "err", err)
	}
}

// storeActive counts the store's tasks that some engine still has to drive.
func (e *Engine) storeActive(ctx context.Context) (int, error) {
	counts, err := e.store.Count(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range states.ActiveStates() {
		n += counts[s]
	}
	return n, nil
}
