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

// stepMachine checks a move against the machine built from the transition
// table: an illegal move is an error, never a silent state change.
func stepMachine(from states.State, ev transitions.Event) (states.State, error) {
	return fsm.Step(from, ev)
}

// step describes one transition: its code, detail and the changes to the
// task beyond its state.
type step struct {
	code     string
	detail   string
	charged  bool
	provider string
	mutate   func(*persist.Task)
}

// move commits one transition of tk, then updates the engine's view of it.
// The caller owns tk (tk.busy). On error nothing changed.
func (e *Engine) move(ctx context.Context, tk *task, ev transitions.Event, s step) error {
	from := tk.t.State
	to, err := stepMachine(from, ev)
	if err != nil {
		e.log.Error("illegal move refused", keyTask, tk.t.ID, keyState, from, keyEvent, ev, "err", err)
		return err
	}
	now := time.Now()
	next := tk.t.Clone()
	next.State = to
	next.Code = s.code
	next.Updated = now
	if s.mutate != nil {
		s.mutate(next)
	}
	pid := s.provider
	if pid == "" {
		pid = next.ProviderID
	}
	rec := &persist.Record{At: now, From: from, Event: ev, To: to, Code: s.code, Detail: s.detail,
		ProviderID: pid, PossiblyCharged: s.charged}
	if err := e.store.Apply(ctx, next, rec); err != nil {
		e.stats.storeErr.Add(1)
		e.log.Error("transition not committed", keyTask, tk.t.ID, keyState, from, keyEvent, ev, "err", err)
		if errors.Is(err, persist.ErrConflict) {
			e.reload(ctx, tk)
		}
		return fmt.Errorf("engine: task %s: %s on %s: %w", tk.t.ID, from, ev, err)
	}
	e.stats.transitions.Add(1)
	if s.charged {
		e.stats.charged.Add(1)
	}
	level := slog.LevelInfo
	if ev == transitions.NotReady || ev == transitions.SubmitSending {
		level = slog.LevelDebug
	}
	// Checked first: the arguments would cost allocations on every
	// transition even when nothing is logged.
	if e.log.Enabled(ctx, level) {
		e.log.Log(ctx, level, "transition", keyTask, next.ID, "from", from, keyState, to, keyEvent, ev, keyCode, s.code)
	}
	e.applied(tk, from, next, *rec)
	return nil
}

// applied updates the engine's view of tk after a committed move from
// from to next by rec: waiters, the counts Drain watches, the hook and the
// subscribers.
func (e *Engine) applied(tk *task, from states.State, next *persist.Task, rec persist.Record) {
	to := next.State
	e.mu.Lock()
	tk.t = next
	tk.intent = rec.Event == transitions.SubmitSending
	tk.hold = time.Time{}
	if to != states.Submitting {
		tk.pending = nil
	}
	wasActive, isActive := !settled(from), !settled(to)
	switch {
	case wasActive && !isActive:
		e.addActiveLocked(-1)
	case !wasActive && isActive:
		e.addActiveLocked(1)
	}
	if settled(to) {
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
	if tk.cancel && !settled(tk.t.State) {
		e.mu.Unlock()
		err := e.move(e.ctx, tk, transitions.Cancelled, step{code: transitions.CodeCancelled, detail: "cancelled by the caller"})
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
		_ = e.move(e.ctx, tk, transitions.AccountFixed, accountFixedStep())
	}
	e.mu.Lock()
	tk.busy = false
	switch {
	case tk.lost:
		e.dropLocked(tk)
	case !settled(tk.t.State) && !e.closed:
		e.pushLocked(tk)
	}
	e.mu.Unlock()
	e.kick()
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

// runSubmit takes a task waiting to submit through to its in.php answer.
func (e *Engine) runSubmit(tk *task) {
	defer e.release(tk)
	ctx := e.ctx
	again := func() { e.retryLater(tk, time.Now().Add(time.Second)) }
	park := func() {
		err := e.move(ctx, tk, transitions.BreakerOpen, step{code: transitions.CodeBreakerOpen,
			detail: "submits stopped by an account error; waiting for account-fixed"})
		if err != nil {
			again()
		}
	}
	switch tk.t.State {
	case states.Backoff:
		if e.BreakerOpen() {
			park()
			return
		}
		if e.move(ctx, tk, transitions.BackoffElapsed, step{code: tk.t.Code}) != nil {
			again()
			return
		}
	case states.Resubmitting:
		if e.BreakerOpen() {
			park()
			return
		}
		err := e.move(ctx, tk, transitions.ResubmitStarted, step{detail: "new task with the same parameters",
			mutate: func(t *persist.Task) { t.ProviderID = ""; t.Token = "" }})
		if err != nil {
			again()
			return
		}
	case states.Submitting:
	default:
		return
	}
	if p := tk.pending; p != nil {
		// An in.php answer whose commit failed: commit it now; the request
		// is not sent (and paid for) again.
		e.commitOutcome(tk, p.ev, p.s)
		return
	}
	if tk.intent {
		err := e.move(ctx, tk, transitions.PossiblyCharged, step{charged: true, provider: tk.t.ProviderID,
			detail: "a submit was being sent when the engine stopped; the provider may have charged it"})
		if err != nil {
			again()
			return
		}
	}
	if e.BreakerOpen() {
		park()
		return
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
	if e.move(ctx, tk, transitions.SubmitSending, step{mutate: func(t *persist.Task) { t.Submits++ }}) != nil {
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
		park()
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
	now := time.Now()
	if err == nil {
		e.budget.noteLocked(&e.mu, now, 0, 1)
		first := e.pol.FirstPollDelay
		if provider.IsTokenMethod(tk.t.Method) {
			first = e.pol.FirstPollDelayToken
		}
		e.commitOutcome(tk, transitions.SubmitAccepted, step{provider: pid, mutate: func(t *persist.Task) {
			t.ProviderID = pid
			t.PollSince = now
			t.NextAt = now.Add(first)
		}})
		return
	}
	var apiErr *provider.APIError
	var te *provider.TransportError
	switch {
	case errors.As(err, &apiErr):
		e.onSubmitCode(tk, apiErr.Code)
	case errors.As(err, &te):
		e.transient(tk, transitions.CodeTransport, te.Error(), te.PossiblyCharged)
	default:
		// The stored parameters no longer pass validation: sending them
		// again cannot help.
		e.commitOutcome(tk, transitions.PermanentError, step{code: "INVALID_REQUEST", detail: err.Error()})
	}
}

// commitOutcome commits the move an in.php answer calls for. Should the
// commit fail, the task keeps the move and its next try commits it again:
// an accepted submit is not resent (and paid twice), a permanent error is
// not sent again, a backoff keeps its count.
func (e *Engine) commitOutcome(tk *task, ev transitions.Event, s step) {
	tk.pending = &pendingMove{ev: ev, s: s}
	if e.commit(tk, ev, s) {
		tk.pending = nil
	}
}

func (e *Engine) onSubmitCode(tk *task, code string) {
	entry, known := transitions.Lookup(code)
	class := transitions.Classify(code)
	if known && entry.IsBan() {
		until := e.ban(entry)
		if class == transitions.ClassTransient {
			e.commitOutcome(tk, transitions.RateLimited, step{code: code, detail: "engine-wide ban until " + until.Format(time.RFC3339),
				mutate: func(t *persist.Task) { t.NextAt = until }})
			return
		}
	}
	switch class {
	case transitions.ClassTransient:
		e.transient(tk, code, "", false)
	case transitions.ClassPermanent:
		e.commitOutcome(tk, transitions.PermanentError, step{code: code, detail: entry.Meaning})
	case transitions.ClassAccount:
		e.openBreaker(code)
		e.commitOutcome(tk, transitions.AccountError, step{code: code, detail: entry.Meaning})
	default:
		e.commitOutcome(tk, transitions.UnknownError, step{code: code, detail: "unexpected answer to in.php"})
	}
}

// transient handles a transient in.php outcome: a backoff, or the end when
// the retries are spent.
func (e *Engine) transient(tk *task, code, detail string, charged bool) {
	limit := max(e.pol.MaxRetries, 0)
	if tk.t.Retries >= limit {
		e.commitOutcome(tk, transitions.RetriesExhausted, step{code: code, charged: charged,
			detail: join(detail, fmt.Sprintf("gave up after %d retries", tk.t.Retries))})
		return
	}
	delay := e.retryDelay(code, tk.t.Retries+1)
	e.stats.retries.Add(1)
	e.commitOutcome(tk, transitions.TransientError, step{code: code, charged: charged,
		detail: join(detail, fmt.Sprintf("retry %d of %d in %s", tk.t.Retries+1, limit, delay.Round(time.Millisecond))),
		mutate: func(t *persist.Task) {
			t.Retries++
			t.NextAt = time.Now().Add(delay)
		}})
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// retryDelay is the wait before retry attempt n (1-based) after code: the
// policy's or the catalogue's delay for the code, else exponential backoff
// with jitter, capped.
func (e *Engine) retryDelay(code string, n int) time.Duration {
	if d, ok := e.pol.RetryDelays[code]; ok {
		return d
	}
	entry, _ := transitions.Lookup(code)
	if entry.RetryDelay > 0 {
		return entry.RetryDelay
	}
	lo, hi := e.pol.BackoffBase, e.pol.BackoffMax
	if entry.BackoffMin > 0 {
		lo, hi = entry.BackoffMin, entry.BackoffMax
	}
	return backoff(lo, hi, n, rand.Float64())
}

// backoff returns lo·2^(n-1), capped at hi, with ±20 % jitter kept inside
// [lo, hi]. r is a uniform draw in [0, 1).
func backoff(lo, hi time.Duration, n int, r float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = time.Duration(float64(d) * (0.8 + 0.4*r))
	return min(max(d, lo), hi)
}

// ban stops requests engine-wide for the code's ban (the policy's retry
// delay for the code, when it sets one) and returns when it ends.
func (e *Engine) ban(entry transitions.Entry) time.Time {
	d := entry.Ban
	if p, ok := e.pol.RetryDelays[entry.Code]; ok {
		d = p
	}
	until := time.Now().Add(d)
	e.stats.bans.Add(1)
	submits, polls := entry.Where != transitions.ResPHP, entry.Where != transitions.InPHP
	e.mu.Lock()
	if submits && until.After(e.pauseSubmit) {
		e.pauseSubmit = until
	}
	if polls && until.After(e.pausePoll) {
		e.extendPollPauseLocked(until)
	}
	e.mu.Unlock()
	if e.fleet != nil {
		if err := e.fleet.Pause(e.ctx, submits, polls, until); err != nil {
			e.log.Error("share a ban with the fleet", keyCode, entry.Code, "err", err)
		}
	}
	e.log.Warn("rate ban: engine waits", keyCode, entry.Code, "until", until)
	e.kick()
	return until
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

// commit is move with the store failure handled: the step stops, the task
// keeps its state and is tried again shortly.
func (e *Engine) commit(tk *task, ev transitions.Event, s step) bool {
	if err := e.move(e.ctx, tk, ev, s); err != nil {
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
	// A ban answered to the whole request is one ban, whatever the number
	// of tasks it carried.
	var banned time.Time
	var apiErr *provider.APIError
	if errors.As(err, &apiErr) {
		if entry, ok := transitions.Lookup(apiErr.Code); ok && entry.IsBan() {
			banned = e.ban(entry)
		}
	}
	// Each answer is its own transition; committing them concurrently lets
	// the store put them in one commit.
	var wg sync.WaitGroup
	for i, tk := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer e.release(tk)
			if err != nil {
				e.onPollError(tk, err, banned)
				return
			}
			e.stats.answers.Add(1)
			e.onAnswer(tk, answers[i])
		}()
	}
	wg.Wait()
}

// onPollError handles a poll request that failed as a whole; banned is the
// end of the ban it announced, already applied.
func (e *Engine) onPollError(tk *task, err error, banned time.Time) {
	var apiErr *provider.APIError
	if errors.As(err, &apiErr) {
		e.onPollCode(tk, apiErr.Code, false, banned)
		return
	}
	var te *provider.TransportError
	detail := err.Error()
	if errors.As(err, &te) {
		detail = te.Error()
	}
	if e.pollTimedOut(tk) {
		e.commit(tk, transitions.PollTimeout, step{code: transitions.CodePollTimeout, detail: "no answer within poll_timeout; last: " + detail})
		return
	}
	e.commit(tk, transitions.TransientError, step{code: transitions.CodeTransport, detail: detail,
		mutate: func(t *persist.Task) { t.NextAt = time.Now().Add(e.pol.PollInterval) }})
}

func (e *Engine) pollTimedOut(tk *task) bool {
	return !tk.t.PollSince.IsZero() && time.Since(tk.t.PollSince) >= e.pol.PollTimeout
}

func (e *Engine) onAnswer(tk *task, a provider.Answer) {
	if a.Token != "" {
		cost := e.cost(tk.t.ProviderID)
		e.commit(tk, transitions.Solved, step{mutate: func(t *persist.Task) {
			t.Polls++
			t.Token = a.Token
			t.Cost = cost
			t.NextAt = time.Time{}
		}})
		return
	}
	e.onPollCode(tk, a.Code, true, time.Time{})
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

// onPollCode handles a code res.php answered for tk. banned, when set, is
// the end of the ban the code announced, already applied.
func (e *Engine) onPollCode(tk *task, code string, answered bool, banned time.Time) {
	polls := 0
	if answered {
		polls = 1
	}
	entry, known := transitions.Lookup(code)
	class := transitions.Classify(code)
	interval := e.pol.PollInterval
	switch {
	case known && entry.IsBan() && class == transitions.ClassTransient:
		until := banned
		if until.IsZero() {
			until = e.ban(entry)
		}
		e.commit(tk, transitions.RateLimited, step{code: code, detail: "engine-wide ban until " + until.Format(time.RFC3339),
			mutate: func(t *persist.Task) {
				t.Polls += polls
				t.NextAt = until
				// A ban must not fail the task: the timeout pauses with it.
				t.PollSince = t.PollSince.Add(time.Until(until))
			}})
	case class == transitions.ClassNotReady || class == transitions.ClassTransient:
		if e.pollTimedOut(tk) {
			e.commit(tk, transitions.PollTimeout, step{code: transitions.CodePollTimeout,
				detail: fmt.Sprintf("no answer within %s", e.pol.PollTimeout),
				mutate: func(t *persist.Task) { t.Polls += polls }})
			return
		}
		ev := transitions.NotReady
		if class == transitions.ClassTransient {
			ev = transitions.TransientError
			interval = max(interval, e.retryDelay(code, 1))
		}
		e.commit(tk, ev, step{code: code, mutate: func(t *persist.Task) {
			t.Polls += polls
			t.NextAt = time.Now().Add(interval)
		}})
	case class == transitions.ClassResubmit:
		limit := max(e.pol.MaxResubmits, 0)
		if tk.t.Resubmits >= limit {
			e.commit(tk, transitions.ResubmitsExhausted, step{code: code,
				detail: fmt.Sprintf("gave up after %d resubmits", tk.t.Resubmits),
				mutate: func(t *persist.Task) { t.Polls += polls }})
			return
		}
		e.stats.resubmits.Add(1)
		e.commit(tk, transitions.ResubmitNeeded, step{code: code,
			detail: fmt.Sprintf("resubmit %d of %d", tk.t.Resubmits+1, limit),
			mutate: func(t *persist.Task) {
				t.Polls += polls
				t.Resubmits++
				t.NextAt = time.Now()
			}})
	case class == transitions.ClassPermanent:
		e.commit(tk, transitions.PermanentError, step{code: code, detail: entry.Meaning,
			mutate: func(t *persist.Task) { t.Polls += polls }})
	case class == transitions.ClassAccount:
		if known && entry.IsBan() && banned.IsZero() {
			e.ban(entry)
		}
		e.openBreaker(code)
		e.commit(tk, transitions.AccountError, step{code: code, detail: entry.Meaning,
			mutate: func(t *persist.Task) { t.Polls += polls }})
	default:
		e.commit(tk, transitions.UnknownError, step{code: code, detail: "unknown answer from res.php",
			mutate: func(t *persist.Task) { t.Polls += polls }})
	}
}
