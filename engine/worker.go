package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The workers: Policy.Concurrency goroutines take jobs from the scheduler,
// send the requests and turn each answer into a decision, committed through
// the gate. A worker owns the tasks of its job until it releases them.

func (e *Engine) worker() {
	defer e.wg.Done()
	for j := range e.jobs {
		switch j.kind {
		case jobSubmit:
			e.runSubmit(j.tasks[0])
		case jobPoll:
			e.runPoll(j.tasks)
		case jobExpire:
			e.runExpire(j.tasks[0])
		}
	}
}

// runSubmit takes a task waiting to submit through to its in.php answer:
// it executes the decisions of a due task (a backoff's end, a resubmit, a
// submit in doubt, the breaker) until one says to send.
func (e *Engine) runSubmit(tk *task) {
	defer e.release(tk)
	ctx := e.ctx
	again := func() { retryLater(tk, time.Now().Add(time.Second)) }
	var send transitions.Decision
	for {
		if tk.cur().State == states.NeedsAccountFix {
			// Queued because it parked while the breaker closed.
			if e.brk.isOpen() || e.unpark(ctx, tk, "") != nil {
				return
			}
			continue
		}
		if tk.cur().State == states.Submitting && tk.pending != nil {
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
		if tk.cur().State != states.Submitting {
			return // parked
		}
	}
	if e.sched.cancelRequested(tk) {
		return // release cancels it, unsent
	}
	if paused, _ := e.lim.pauses(); time.Now().Before(paused) {
		retryLater(tk, paused)
		return
	}
	if !e.fleetSlotReady(ctx, tk) {
		return
	}
	full, err := e.store.Get(ctx, tk.cur().ID)
	if err != nil {
		e.log.Error("load task parameters", keyTask, tk.cur().ID, "err", err)
		again()
		return
	}
	// The store breaker: an answer already paid for is not on disk yet.
	// Spending more waits for the store. It is asked before the intent is
	// committed, not after: a durable intent goes out (one of the requests
	// already leaving), so that no intent stays on disk unsent, to be
	// recorded as possibly charged on the next start. Submits handed out
	// together commit their intents together, and one of them may fail to
	// record its answer before the others have left.
	if e.unrec.open() {
		again()
		return
	}
	// The intent is durable before the request leaves: a crash from here
	// on is seen on resume and recorded as possibly charged.
	if e.commit(ctx, tk, send) != nil {
		// A commit reported failed may have been written: when the reload
		// after the conflict shows this very intent on disk (nothing was
		// sent since), it is durable and the request may go.
		if !tk.intent || e.sched.isLost(tk) || tk.cur().State != states.Submitting {
			again()
			return
		}
	}
	// The breaker may have opened while the intent was committed: the
	// request has not left, so the task is parked unsent.
	if e.brk.isOpen() {
		if e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Due}) != nil {
			again()
		}
		return
	}
	// Paced where it leaves: the provider counts arrivals.
	if err := e.lim.awaitSend(ctx); err != nil {
		// Not sent: the intent on disk is this engine's own, known unsent.
		tk.intent = false
		var p errPaused
		if errors.As(err, &p) {
			retryLater(tk, p.until)
		}
		return
	}
	var pid string
	err = e.request(ctx, func(ctx context.Context) (err error) {
		pid, err = e.api.Submit(ctx, provider.Request{Method: full.Method, Params: full.Params})
		return err
	})
	e.stats.submits.Add(1)
	if ctx.Err() != nil {
		return // aborted by Shutdown: resume records it as possibly charged
	}
	in := transitions.Input{What: transitions.Accepted, ProviderID: pid}
	if err == nil {
		e.lim.noteAccepted(time.Now())
	} else {
		in = answerInput(err, true)
	}
	d, err := e.decide(tk, in)
	if err != nil {
		again()
		return
	}
	e.commitOutcome(tk, d)
}

// runExpire fails a task whose deadline has passed. A task that holds an
// in.php answer the store has not recorded records it first (the
// provider's id is paid for): it expires on its next turn.
func (e *Engine) runExpire(tk *task) {
	defer e.release(tk)
	if tk.pending != nil {
		e.commitOutcome(tk, *tk.pending)
		return
	}
	d, err := e.decide(tk, transitions.Input{What: transitions.Due, InDoubt: tk.intent})
	if err != nil {
		retryLater(tk, time.Now().Add(time.Second))
		return
	}
	if d.Event != transitions.DeadlinePassed {
		// Only a deadline's decision is executed here: any other due
		// step (a send) is the submit job's.
		e.log.Error("expiry without a deadline decision", keyTask, tk.cur().ID, keyState, tk.cur().State, keyEvent, d.Event)
		return
	}
	_ = e.commitOrRetry(tk, d)
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
		in.Code, in.Detail = apiErr.Code, apiErr.ErrorText
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
// error is not sent again, a backoff keeps its count. Meanwhile the store
// breaker holds every new in.php request back.
func (e *Engine) commitOutcome(tk *task, d transitions.Decision) {
	tk.pending = &d
	err := e.commitOrRetry(tk, d)
	if err == nil {
		tk.pending = nil
		e.unrec.drop(tk.cur().ID)
		return
	}
	if tk.pending == nil {
		return // found on disk after all (a commit reported failed but written)
	}
	pid := d.ProviderID
	if pid == "" {
		pid = tk.cur().ProviderID
	}
	u := Unrecorded{TaskID: tk.cur().ID, ProviderID: pid, Event: d.Event}
	if e.unrec.hold(u, err) {
		e.log.Error("store failing: in.php answers not recorded; no new in.php request until they are",
			"unrecorded", e.unrec.count(), keyTask, u.TaskID, "provider_id", pid, keyEvent, d.Event, "err", err)
	}
}

// commitOrRetry is commit with the store failure handled: the step stops,
// the task keeps its state and is tried again after a backoff that grows
// with its failed commits (1 s to 30 s).
func (e *Engine) commitOrRetry(tk *task, d transitions.Decision) error {
	if err := e.commit(e.ctx, tk, d); err != nil {
		tk.failures++
		retryLater(tk, time.Now().Add(transitions.Backoff(time.Second, 30*time.Second, tk.failures, rand.Float64())))
		return err
	}
	tk.failures = 0
	return nil
}

// runPoll asks res.php for a batch of tasks and commits each answer.
func (e *Engine) runPoll(batch []*task) {
	ctx := e.ctx
	// A task cancelled while it waited for this worker is cancelled, not
	// polled.
	live := batch[:0:0]
	for _, tk := range batch {
		if e.sched.cancelRequested(tk) {
			e.release(tk)
		} else {
			live = append(live, tk)
		}
	}
	if batch = live; len(batch) == 0 {
		return
	}
	ids := make([]string, len(batch))
	for i, tk := range batch {
		ids[i] = tk.cur().ProviderID
	}
	var answers []provider.Answer
	err := e.request(ctx, func(ctx context.Context) (err error) {
		answers, err = e.api.Poll(ctx, ids)
		return err
	})
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
					Cost: e.cost(tk.cur().Method, tk.cur().ProviderID), Polled: true}
			default:
				e.stats.answers.Add(1)
				in = transitions.Input{What: transitions.Answer, Code: answers[i].Code, Polled: true}
			}
			d, derr := e.decide(tk, in)
			if derr != nil {
				retryLater(tk, time.Now().Add(time.Second))
				return
			}
			_ = e.commitOrRetry(tk, d)
		})
	}
	wg.Wait()
}

// release ends its owner's hold on tk: a cancellation asked meanwhile is
// carried out, and the task is given back to the scheduler, which queues it
// again if it is still to drive (or parked while the breaker closed).
func (e *Engine) release(tk *task) {
	if testHookRelease != nil {
		testHookRelease()
	}
	if e.sched.cancelRequested(tk) && !tk.cur().State.Settled() {
		if err := e.decideAndCommit(e.ctx, tk, transitions.Input{What: transitions.Cancel}); err == nil {
			e.sched.cancelDone(tk)
		} else { // the cancel is tried again in a moment
			retryLater(tk, time.Now().Add(time.Second))
		}
	}
	if e.sched.giveBack(tk, !e.isClosed()) {
		e.reg.drop(tk)
	}
}

// testHookRelease, when set by a test, runs at the start of every release:
// it widens the window between a worker's last move and its release.
var testHookRelease func()
