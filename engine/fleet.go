package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// Fleet mode (Config.Fleet; the store is a persist.Leaser: several
// engines on one database): the engine drives only the tasks it holds a
// lease on. It
// claims due tasks, renews its leases while it works, drops tasks whose
// lease another engine took over, and shares the breaker, bans and submit
// rate through persist.Fleet when the store offers it.

const defaultLeaseTTL = 30 * time.Second

// leasing is an engine's part in a fleet.
type leasing struct {
	leaser persist.Leaser
	shared persist.Fleet // nil: breaker, bans and rate stay local
	owner  string
	ttl    time.Duration
	every  time.Duration // how often the fleet loop runs
}

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
		if time.Since(lastRenew) >= e.fleet.ttl/3 {
			e.renew()
			lastRenew = time.Now()
		}
		e.claim()
		// Jittered, so that engines started together do not claim in step
		// (the first of each round would take everything).
		wait := time.Duration(float64(e.fleet.every) * (0.7 + 0.6*rand.Float64()))
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
	room := min(held-e.reg.len(), batch)
	if room <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	got, err := e.fleet.leaser.Claim(ctx, e.fleet.owner, room, e.fleet.ttl)
	if err != nil {
		e.log.Error("claim tasks", "err", err)
		return
	}
	if len(got) == 0 {
		return
	}
	e.adopt(got)
}

// adopt takes tasks into the engine's care: a Submitting task whose last
// record is the intent to submit (the store keeps persist.Task.Intent) is
// marked, so that its possibly charged submit is recorded before it is
// sent again.
func (e *Engine) adopt(list []*persist.Task) {
	for _, t := range list {
		tk := newTask(t)
		tk.intent = t.State == states.Submitting && t.Intent
		if e.isClosed() || !e.reg.add(tk) {
			continue
		}
		e.sched.push(tk)
	}
}

// renew extends the engine's leases and lets go of tasks another engine
// took over after a lease expired.
func (e *Engine) renew() {
	held := e.reg.all()
	if len(held) == 0 {
		return
	}
	ids := make([]string, len(held))
	byID := make(map[string]*task, len(held))
	for i, tk := range held {
		ids[i] = tk.cur().ID
		byID[ids[i]] = tk
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	lost, err := e.fleet.leaser.Renew(ctx, e.fleet.owner, ids, e.fleet.ttl)
	if err != nil {
		e.log.Error("renew leases", "err", err)
		return
	}
	for _, id := range lost {
		tk, ok := byID[id]
		if !ok {
			continue
		}
		e.log.Warn("lease lost: task taken over by another engine", keyTask, id)
		if e.sched.markLost(tk) {
			e.reg.drop(tk)
		}
	}
}

// syncFleet follows the fleet-wide breaker and pauses.
func (e *Engine) syncFleet() {
	if e.fleet.shared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	c, err := e.fleet.shared.Conditions(ctx)
	if err != nil {
		e.log.Error("fleet conditions", "err", err)
		return
	}
	opened, republish := e.brk.follow(c)
	e.sched.shiftPollTimers(e.lim.follow(c.SubmitUntil, c.PollUntil, time.Now()))
	if republish != "" {
		if err := e.fleet.shared.SetBreaker(ctx, true, republish); err != nil {
			e.log.Error("open the fleet's breaker", keyCode, republish, "err", err)
		}
	}
	if opened {
		e.log.Warn("breaker opened by another engine", keyCode, c.BreakerCode)
		e.sched.kick()
	}
}

// releaseLeases gives up every lease at shutdown so that other engines can
// take the tasks at once.
func (e *Engine) releaseLeases() {
	if e.fleet == nil {
		return
	}
	held := e.reg.all()
	if len(held) == 0 {
		return
	}
	ids := make([]string, len(held))
	for i, tk := range held {
		ids[i] = tk.cur().ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.pol.RequestTimeout)
	defer cancel()
	if err := e.fleet.leaser.Release(ctx, e.fleet.owner, ids); err != nil {
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

// fleetSlotReady books the fleet's next in.php slot for tk when the store
// is a persist.Fleet. When the slot lies ahead, the task is queued for it
// and the worker moves on: no worker, and no poll behind it, waits on the
// fleet's pace.
func (e *Engine) fleetSlotReady(ctx context.Context, tk *task) bool {
	if e.fleet == nil || e.fleet.shared == nil {
		return true
	}
	if !tk.slot.IsZero() && time.Since(tk.slot) > time.Duration(float64(time.Second)/e.pol.SubmitRate) {
		// A slot missed (a pause came between): sending on it now would
		// bunch with every other missed slot.
		tk.slot = time.Time{}
	}
	if tk.slot.IsZero() {
		// 90 % of the rate: slots spaced exactly 1/rate apart could put
		// one request too many in the provider's 3-second window, and a
		// request leaves a little after its slot (the intent's commit
		// comes first), so late ones can bunch.
		at, err := e.fleet.shared.ReserveSubmit(ctx, 0.9*e.pol.SubmitRate)
		if err != nil {
			e.log.Error("reserve a fleet submit slot; pacing by this engine alone", "err", err)
			return e.lim.waitSubmit(ctx) == nil
		}
		tk.slot = at
	}
	if time.Until(tk.slot) > 10*time.Millisecond {
		retryLater(tk, tk.slot)
		return false
	}
	tk.slot = time.Time{}
	return true
}
