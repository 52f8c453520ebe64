package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Log keys.
const (
	keyTask  = "task"
	keyState = "state"
	keyEvent = "event"
	keyCode  = "code"
)

// decide asks the decision table what in calls for, with tk's state and
// counters, the breaker and the engine's limits filled in. The caller owns
// tk.
func (e *Engine) decide(tk *task, in transitions.Input) (transitions.Decision, error) {
	t := tk.t
	in.State = t.State
	if in.What == transitions.Due {
		in.Code = t.Code // a backoff keeps the code it waits for
	}
	in.Retries, in.Resubmits, in.PollSince = t.Retries, t.Resubmits, t.PollSince
	in.TokenMethod = provider.IsTokenMethod(t.Method)
	in.BreakerOpen = e.BreakerOpen()
	in.Now = time.Now()
	in.Jitter = rand.Float64()
	in.Limits = e.limits
	d, err := transitions.Decide(in)
	if err != nil {
		e.log.Error("no decision", keyTask, t.ID, keyState, t.State, "what", in.What, keyCode, in.Code, "err", err)
	}
	return d, err
}

// commit is the gate every change of a task passes: it builds the record
// of d, commits it, and only then updates the engine's view of tk (waiters,
// hook, subscribers, counts) and runs d's effects (a ban, the breaker). On
// error nothing changed and no effect ran. The caller owns tk.
func (e *Engine) commit(ctx context.Context, tk *task, d transitions.Decision) error {
	from := tk.t.State
	next, rec, err := fsm.Apply(tk.t, d)
	if err != nil {
		e.log.Error("illegal move refused", keyTask, tk.t.ID, keyState, from, keyEvent, d.Event, "err", err)
		return err
	}
	if err := e.store.Apply(ctx, next, rec); err != nil {
		e.stats.storeErr.Add(1)
		e.log.Error("transition not committed", keyTask, tk.t.ID, keyState, from, keyEvent, d.Event, "err", err)
		if errors.Is(err, persist.ErrConflict) {
			e.reload(ctx, tk)
		}
		return fmt.Errorf("engine: task %s: %s on %s: %w", tk.t.ID, from, d.Event, err)
	}
	e.stats.transitions.Add(1)
	if d.Charged {
		e.stats.charged.Add(1)
	}
	switch d.Event {
	case transitions.TransientError:
		if from == states.Submitting {
			e.stats.retries.Add(1)
		}
	case transitions.ResubmitNeeded:
		e.stats.resubmits.Add(1)
	}
	level := slog.LevelInfo
	if d.Event == transitions.NotReady || d.Event == transitions.SubmitSending {
		level = slog.LevelDebug
	}
	// Checked first: the arguments would cost allocations on every
	// transition even when nothing is logged.
	if e.log.Enabled(ctx, level) {
		e.log.Log(ctx, level, "transition", keyTask, next.ID, "from", from, keyState, next.State, keyEvent, d.Event, keyCode, d.Code)
	}
	e.applied(tk, from, next, *rec)
	for _, fx := range d.Effects {
		switch fx {
		case transitions.Ban:
			e.ban(d.Ban)
		case transitions.OpenBreaker:
			e.openBreaker(d.Code)
		}
	}
	return nil
}

// applied updates the engine's view of tk after a committed move from
// from to next by rec: waiters, the counts Drain watches, the hook and the
// subscribers.
func (e *Engine) applied(tk *task, from states.State, next *persist.Task, rec persist.Record) {
	to := next.State
	e.mu.Lock()
	tk.t = next
	tk.intent = transitions.InDoubt(rec.Event)
	tk.hold = time.Time{}
	if to != states.Submitting {
		tk.pending = nil
	}
	wasActive, isActive := from.Active(), to.Active()
	switch {
	case wasActive && !isActive:
		e.addActiveLocked(-1)
	case !wasActive && isActive:
		e.addActiveLocked(1)
	}
	if to.Settled() {
		for _, ch := range e.waiters[next.ID] {
			close(ch)
		}
		delete(e.waiters, next.ID)
		// A parked task stays with a lone engine (AccountFixed releases
		// it); in a fleet it belongs to no engine until it is released.
		if to.Terminal() || e.leaser != nil {
			delete(e.tasks, next.ID)
		}
	}
	var tr Transition
	if e.hook != nil || len(e.subs) > 0 {
		tr = Transition{Task: next.Clone(), Record: rec}
		for _, ch := range e.subs {
			select {
			case ch <- tr:
			default:
			}
		}
	}
	e.mu.Unlock()
	if e.hook != nil {
		e.hook(tr)
	}
}

// reload takes the stored task as the truth after a conflict. A commit
// reported failed may have been written after all (an fsync error after
// the write, a lost reply from a database server): the task then moved on
// disk without the engine knowing, and its view, waiters and counts catch
// up here. In a fleet, a task another engine has taken over is let go.
func (e *Engine) reload(ctx context.Context, tk *task) {
	fresh, err := e.store.Get(ctx, tk.t.ID)
	if err != nil {
		e.log.Error("reload task after a conflict", keyTask, tk.t.ID, "err", err)
		return
	}
	fresh.Params = nil
	if e.leaser != nil && fresh.Owner != "" && fresh.Owner != e.owner {
		e.mu.Lock()
		tk.lost = true
		e.mu.Unlock()
	}
	if fresh.Seq == tk.t.Seq {
		e.mu.Lock()
		tk.t = fresh
		e.mu.Unlock()
		return
	}
	hist, err := e.store.History(ctx, tk.t.ID)
	if err != nil || len(hist) == 0 {
		e.log.Error("reload history after a conflict", keyTask, tk.t.ID, "err", err)
		return
	}
	last := hist[len(hist)-1]
	e.log.Warn("task moved on disk without the engine: taking the stored state", keyTask, fresh.ID,
		"from", tk.t.State, keyState, fresh.State, keyEvent, last.Event)
	e.applied(tk, tk.t.State, fresh, last)
}

// release ends a worker's ownership of tk: a pending cancellation is
// applied, and an unsettled task is queued again.
func (e *Engine) release(tk *task) {
	e.mu.Lock()
	if tk.cancel && !tk.t.State.Settled() {
		e.mu.Unlock()
		err := e.cancelOwned(e.ctx, tk)
		e.mu.Lock()
		if err == nil {
			tk.cancel = false
		} else { // the cancel is tried again in a moment
			t := tk.t.Clone()
			t.NextAt = time.Now().Add(time.Second)
			tk.t, tk.hold = t, t.NextAt
		}
	}
	// Parked while a person released the parked tasks (AccountFixed skips
	// a task a worker holds): release it now.
	fix := tk.t.State == states.NeedsAccountFix && !e.breaker && e.leaser == nil && !e.closed
	e.mu.Unlock()
	if fix {
		_ = e.decideAndCommit(e.ctx, tk, transitions.Input{What: transitions.Fixed})
	}
	e.mu.Lock()
	tk.busy = false
	switch {
	case tk.lost:
		e.dropLocked(tk)
	case !tk.t.State.Settled() && !e.closed:
		e.pushLocked(tk)
	}
	e.mu.Unlock()
	e.kick()
}

// cancelOwned ends tk in Failed with CANCELLED. The caller owns tk.
func (e *Engine) cancelOwned(ctx context.Context, tk *task) error {
	return e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Cancel})
}

// decideAndCommit decides what in calls for and commits it. The caller
// owns tk.
func (e *Engine) decideAndCommit(ctx context.Context, tk *task, in transitions.Input) error {
	d, err := e.decide(tk, in)
	if err != nil {
		return err
	}
	return e.commit(ctx, tk, d)
}

// retryLater keeps tk's state and moves its next action (in memory only)
// after a step that could not be committed or had to wait.
func (e *Engine) retryLater(tk *task, at time.Time) {
	e.mu.Lock()
	t := tk.t.Clone()
	t.NextAt = at
	tk.t = t
	tk.hold = at
	e.mu.Unlock()
}

// schedule is the engine's one scheduling loop: it hands due tasks to the
// workers, polls in batches, and sleeps until the next due time.
func (e *Engine) schedule() {
	defer e.wg.Done()
	defer close(e.jobs)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		jobs, next := e.collect(now)
		for i, j := range jobs {
			select {
			case e.jobs <- j:
			case <-e.done:
				e.unclaim(jobs[i:])
				return
			}
		}
		if len(jobs) > 0 {
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-e.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-e.done:
			return
		}
	}
}

// unclaim gives back tasks of jobs that were never started.
func (e *Engine) unclaim(jobs []job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range jobs {
		for _, tk := range j.tasks {
			tk.busy = false
		}
	}
}

// collect takes the due work off the queues. It returns the jobs and the
// time at which more work falls due (zero: none queued).
func (e *Engine) collect(now time.Time) ([]job, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var jobs []job
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	take := func(q *taskHeap) *task {
		tk := heap.Pop(q).(*task)
		tk.q = nil
		tk.busy = true
		return tk
	}
	// Submits. With the breaker open every waiting task is parked at once,
	// but for those whose last step failed to commit (held a moment).
	var held []*task
	defer func() {
		for _, tk := range held {
			tk.q = &e.submitQ
			heap.Push(&e.submitQ, tk)
		}
	}()
	for e.submitQ.Len() > 0 {
		tk := e.submitQ[0]
		if e.breaker && tk.hold.After(now) {
			held = append(held, heap.Pop(&e.submitQ).(*task))
			later(tk.hold)
			continue
		}
		if !e.breaker {
			if now.Before(e.pauseSubmit) {
				later(e.pauseSubmit)
				break
			}
			if tk.t.NextAt.After(now) {
				later(tk.t.NextAt)
				break
			}
			if d := e.submitDelayLocked(now); d > 0 {
				later(now.Add(d))
				break
			}
		}
		jobs = append(jobs, job{kind: jobSubmit, tasks: []*task{take(&e.submitQ)}})
		if len(jobs) >= 4*e.pol.Concurrency {
			later(now)
			break
		}
	}
	// Polls, batched: when the first is due, every task due within the
	// batch window joins it.
	if e.pollQ.Len() > 0 {
		switch first := e.pollQ[0].t.NextAt; {
		case now.Before(e.pausePoll):
			later(e.pausePoll)
		case first.After(now):
			later(first)
		case !e.budget.allow(now):
			later(e.budget.nextMinute(now))
		default:
			horizon := now.Add(e.window)
			var batch []*task
			for e.pollQ.Len() > 0 && !e.pollQ[0].t.NextAt.After(horizon) {
				batch = append(batch, take(&e.pollQ))
				if len(batch) == e.batchN {
					jobs = append(jobs, job{kind: jobPoll, tasks: batch})
					e.budget.note(now, 1, 0)
					batch = nil
					if !e.budget.allow(now) {
						break
					}
				}
			}
			if len(batch) > 0 {
				jobs = append(jobs, job{kind: jobPoll, tasks: batch})
				e.budget.note(now, 1, 0)
			}
			if e.pollQ.Len() > 0 {
				later(e.pollQ[0].t.NextAt)
			}
		}
	}
	return jobs, next
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for j := range e.jobs {
		switch j.kind {
		case jobSubmit:
			e.runSubmit(j.tasks[0])
		case jobPoll:
			e.runPoll(j.tasks)
		}
	}
}

// runSubmit takes a task waiting to submit through to its in.php answer:
// it executes the decisions of a due task (a backoff's end, a resubmit, a
// submit in doubt, the breaker) until one says to send.
func (e *Engine) runSubmit(tk *task) {
	defer e.release(tk)
	ctx := e.ctx
	again := func() { e.retryLater(tk, time.Now().Add(time.Second)) }
	var send transitions.Decision
	for {
		if tk.t.State == states.Submitting && tk.pending != nil {
			// An in.php answer whose commit failed: commit it now; the
			// request is not sent (and paid for) again.
			e.commitOutcome(tk, *tk.pending)
			return
		}
		d, err := e.decide(tk, transitions.Input{What: transitions.Due, InDoubt: tk.intent})
		if err != nil {
			return
		}
		if d.Has(transitions.Send) {
			send = d
			break
		}
		if e.commit(ctx, tk, d) != nil {
			again()
			return
		}
		if tk.t.State != states.Submitting {
			return // parked
		}
	}
	e.mu.Lock()
	paused, cancelled := e.pauseSubmit, tk.cancel
	e.mu.Unlock()
	if cancelled {
		return // release cancels it, unsent
	}
	if time.Now().Before(paused) {
		e.retryLater(tk, paused)
		return
	}
	if !e.fleetSlotReady(ctx, tk) {
		return
	}
	full, err := e.store.Get(ctx, tk.t.ID)
	if err != nil {
		e.log.Error("load task parameters", keyTask, tk.t.ID, "err", err)
		again()
		return
	}
	// The intent is durable before the request leaves: a crash from here
	// on is seen on resume and recorded as possibly charged.
	if e.commit(ctx, tk, send) != nil {
		// A commit reported failed may have been written: when the reload
		// after the conflict shows this very intent on disk (nothing was
		// sent since), it is durable and the request may go.
		e.mu.Lock()
		durable := tk.intent && !tk.lost && tk.t.State == states.Submitting
		e.mu.Unlock()
		if !durable {
			again()
			return
		}
	}
	// The breaker may have opened while the intent was committed: the
	// request has not left, so the task is parked unsent.
	if e.BreakerOpen() {
		d, err := e.decide(tk, transitions.Input{What: transitions.Due})
		if err == nil && e.commit(ctx, tk, d) != nil {
			again()
		}
		return
	}
	rctx, cancel := context.WithTimeout(ctx, e.pol.RequestTimeout)
	pid, err := e.api.Submit(rctx, provider.Request{Method: full.Method, Params: full.Params})
	cancel()
	e.stats.submits.Add(1)
	if ctx.Err() != nil {
		return // aborted by Shutdown: resume records it as possibly charged
	}
	e.onSubmit(tk, pid, err)
}

// submitDelayLocked is how long the next submit must wait for the
// engine's pacing: the token bucket of submit_rate and the provider's
// 3-second window. When it is zero, the send is booked. The scheduler
// calls it before it hands a submit to a worker, so no worker (and no
// poll behind it) waits on the pace of in.php.
func (e *Engine) submitDelayLocked(now time.Time) time.Duration {
	if e.fleet != nil {
		return 0 // the fleet's shared slots pace it (fleetSlotReady)
	}
	if d := e.window3.delay(now); d > 0 {
		return d
	}
	r := e.limiter.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	e.window3.book(now)
	return 0
}

// fleetSlotReady books the fleet's next in.php slot for tk when the store
// is a persist.Fleet. When the slot lies ahead, the task is queued for it
// and the worker moves on: no worker, and no poll behind it, waits on the
// fleet's pace.
func (e *Engine) fleetSlotReady(ctx context.Context, tk *task) bool {
	if e.fleet == nil {
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
		at, err := e.fleet.ReserveSubmit(ctx, 0.9*e.pol.SubmitRate)
		if err != nil {
			e.log.Error("reserve a fleet submit slot; pacing by this engine alone", "err", err)
			return e.limiter.Wait(ctx) == nil
		}
		tk.slot = at
	}
	if time.Until(tk.slot) > 10*time.Millisecond {
		e.retryLater(tk, tk.slot)
		return false
	}
	tk.slot = time.Time{}
	return true
}

func (e *Engine) onSubmit(tk *task, pid string, err error) {
	in := transitions.Input{What: transitions.Accepted, ProviderID: pid}
	if err == nil {
		e.budget.noteLocked(&e.mu, time.Now(), 0, 1)
	} else {
		in = answerInput(err, true)
	}
	d, derr := e.decide(tk, in)
	if derr != nil {
		e.retryLater(tk, time.Now().Add(time.Second))
		return
	}
	e.commitOutcome(tk, d)
}

// answerInput is the decision input for a failed request: the provider's
// code, trouble below the API (possibly charged when the request may have
// arrived), or, for a submit, a request that no longer validates.
func answerInput(err error, submit bool) transitions.Input {
	in := transitions.Input{What: transitions.Answer}
	var apiErr *provider.APIError
	var te *provider.TransportError
	switch {
	case errors.As(err, &apiErr):
		in.Code = apiErr.Code
	case errors.As(err, &te):
		in.Code, in.Detail, in.Charged = transitions.CodeTransport, te.Error(), te.PossiblyCharged
	case !submit:
		in.Code, in.Detail = transitions.CodeTransport, err.Error()
	default:
		// The stored parameters no longer pass validation: sending them
		// again cannot help.
		in.Code, in.Detail = transitions.CodeInvalidRequest, err.Error()
	}
	return in
}

// commitOutcome commits the move an in.php answer calls for. Should the
// commit fail, the task keeps the decision and its next try commits it
// again: an accepted submit is not resent (and paid twice), a permanent
// error is not sent again, a backoff keeps its count.
func (e *Engine) commitOutcome(tk *task, d transitions.Decision) {
	tk.pending = &d
	if e.commitOrRetry(tk, d) {
		tk.pending = nil
	}
}

// ban stops the requests b covers engine-wide until it ends. The tasks of
// one batched poll each carry the same ban: only the first to arrive
// extends the pauses, counts it and tells the fleet.
func (e *Engine) ban(b transitions.BanOrder) {
	e.mu.Lock()
	fresh := false
	if b.Submits && b.Until.After(e.pauseSubmit) {
		e.pauseSubmit = b.Until
		fresh = true
	}
	if b.Polls && b.Until.After(e.pausePoll) {
		e.extendPollPauseLocked(b.Until)
		fresh = true
	}
	e.mu.Unlock()
	if !fresh {
		return
	}
	e.stats.bans.Add(1)
	if e.fleet != nil {
		if err := e.fleet.Pause(e.ctx, b.Submits, b.Polls, b.Until); err != nil {
			e.log.Error("share a ban with the fleet", keyCode, b.Code, "err", err)
		}
	}
	e.log.Warn("rate ban: engine waits", keyCode, b.Code, "until", b.Until)
	e.kick()
}

// extendPollPauseLocked stops polls until until and moves the poll
// timeout of every queued polling task by as much: a ban must not fail a
// task. The caller holds e.mu.
func (e *Engine) extendPollPauseLocked(until time.Time) {
	from := time.Now()
	if e.pausePoll.After(from) {
		from = e.pausePoll
	}
	if ext := until.Sub(from); ext > 0 {
		for _, tk := range e.pollQ {
			t := tk.t.Clone()
			t.PollSince = t.PollSince.Add(ext)
			tk.t = t
		}
	}
	e.pausePoll = until
}

func (e *Engine) openBreaker(code string) {
	e.mu.Lock()
	was := e.breaker
	e.breaker = true
	if !was {
		e.fleetSawOpen = false
		e.breakerCode = code
	}
	e.mu.Unlock()
	if e.fleet != nil {
		if err := e.fleet.SetBreaker(e.ctx, true, code); err != nil {
			e.log.Error("open the fleet's breaker", keyCode, code, "err", err)
		}
	}
	if !was {
		e.stats.trips.Add(1)
		e.log.Warn("account error: submits stopped until account-fixed", keyCode, code)
		e.kick()
	}
}

// commitOrRetry is commit with the store failure handled: the step stops,
// the task keeps its state and is tried again shortly.
func (e *Engine) commitOrRetry(tk *task, d transitions.Decision) bool {
	if err := e.commit(e.ctx, tk, d); err != nil {
		e.retryLater(tk, time.Now().Add(time.Second))
		return false
	}
	return true
}

// runPoll asks res.php for a batch of tasks and commits each answer.
func (e *Engine) runPoll(batch []*task) {
	ctx := e.ctx
	// A task cancelled while it waited for this worker is cancelled, not
	// polled.
	e.mu.Lock()
	live := batch[:0:0]
	var cancelled []*task
	for _, tk := range batch {
		if tk.cancel {
			cancelled = append(cancelled, tk)
		} else {
			live = append(live, tk)
		}
	}
	e.mu.Unlock()
	for _, tk := range cancelled {
		e.release(tk)
	}
	if batch = live; len(batch) == 0 {
		return
	}
	ids := make([]string, len(batch))
	for i, tk := range batch {
		ids[i] = tk.t.ProviderID
	}
	rctx, cancel := context.WithTimeout(ctx, e.pol.RequestTimeout)
	answers, err := e.api.Poll(rctx, ids)
	cancel()
	e.stats.polls.Add(1)
	if ctx.Err() != nil {
		for _, tk := range batch {
			e.release(tk)
		}
		return
	}
	if err == nil && len(answers) != len(batch) {
		err = &provider.TransportError{Endpoint: "res.php", Err: fmt.Errorf("got %d answers for %d ids", len(answers), len(batch))}
	}
	// Each answer is its own transition; committing them concurrently lets
	// the store put them in one commit.
	var wg sync.WaitGroup
	for i, tk := range batch {
		wg.Go(func() {
			defer e.release(tk)
			var in transitions.Input
			switch {
			case err != nil:
				in = answerInput(err, false)
			case answers[i].Token != "":
				e.stats.answers.Add(1)
				in = transitions.Input{What: transitions.Token, Token: answers[i].Token,
					Cost: e.cost(tk.t.ProviderID), Polled: true}
			default:
				e.stats.answers.Add(1)
				in = transitions.Input{What: transitions.Answer, Code: answers[i].Code, Polled: true}
			}
			d, derr := e.decide(tk, in)
			if derr != nil {
				e.retryLater(tk, time.Now().Add(time.Second))
				return
			}
			e.commitOrRetry(tk, d)
		})
	}
	wg.Wait()
}

// cost asks the provider for a solved task's price when Config.FetchCost is
// set; "" when unknown. A failure only loses the price, never the token.
func (e *Engine) cost(pid string) string {
	if e.coster == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.pol.RequestTimeout)
	defer cancel()
	_, cost, err := e.coster.Cost(ctx, pid)
	e.stats.polls.Add(1)
	if err != nil {
		e.log.Warn("cost not fetched", "provider_id", pid, "err", err)
		return ""
	}
	return cost
}
