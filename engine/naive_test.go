package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// naiveEngine is the baseline the benchmark compares the engine with: one
// goroutine per task, each submitting its task, waiting the first-poll
// delay and then polling that one task alone (res.php?id=, never ids=)
// every poll interval until it has an answer.
//
// To keep the comparison about scheduling and batching only, it shares
// everything else with the engine: the same provider client, the same
// policy figures (first-poll delays, poll interval and timeout, retry and
// resubmit limits, retry delays), a submit rate the provider's 60-in-3-s
// rule tolerates (19/s with a burst of 1, as the engine's 20/s bucket plus
// its 57-in-3-s window), and the same store writes: every transition is one
// persist.Store.Apply of the same record the engine would write, checked by
// fsm.Step. It has no breaker (an account error parks the one task), no
// engine-wide ban (each task waits a ban out on its own) and no resume.
type naiveEngine struct {
	store   persist.Store
	api     engine.API
	pol     engine.Policy
	limiter *rate.Limiter

	inFlight    atomic.Int64 // goroutines still driving a task
	transitions atomic.Int64
	submits     atomic.Int64
	polls       atomic.Int64
	storeErrs   atomic.Int64
}

// naiveSubmitRate keeps a bucket with a burst of 1 within the provider's
// rule of 60 in.php requests in 3 s: 3 × 19 + 1 = 58.
const naiveSubmitRate = 19

func newNaiveEngine(store persist.Store, api engine.API, pol engine.Policy) *naiveEngine {
	return &naiveEngine{store: store, api: api, pol: pol.WithDefaults(),
		limiter: rate.NewLimiter(naiveSubmitRate, 1)}
}

// start stores the requests as new tasks (one transaction, as
// Engine.SubmitMany does) and starts one goroutine per task. Wait on wg.
func (n *naiveEngine) start(ctx context.Context, reqs []engine.Request, wg *sync.WaitGroup) ([]string, error) {
	now := time.Now()
	tasks := make([]*persist.Task, len(reqs))
	for i, r := range reqs {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("naive: new id: %w", err)
		}
		tasks[i] = &persist.Task{ID: id.String(), Ref: r.Ref, Method: r.Method, Params: r.Params,
			State: transitions.Initial, Created: now, Updated: now, NextAt: now}
	}
	if err := n.store.Create(ctx, tasks...); err != nil {
		return nil, fmt.Errorf("naive: create: %w", err)
	}
	ids := make([]string, len(tasks))
	n.inFlight.Add(int64(len(tasks)))
	for i, t := range tasks {
		ids[i] = t.ID
		// The goroutine keeps the parameters it needs to submit (and
		// resubmit) in its own frame; the task it rewrites has none.
		params := t.Params
		t.Params = nil
		wg.Go(func() {
			defer n.inFlight.Add(-1)
			n.solve(ctx, t, params)
		})
	}
	return ids, nil
}

// naiveTask is one goroutine's task.
type naiveTask struct {
	t      *persist.Task
	params map[string]string
	broken bool // a transition was not committed: the goroutine gives up
}

// move commits one transition as the engine does: checked by the machine,
// the record and the task's new fields in one Apply.
func (n *naiveEngine) move(ctx context.Context, nt *naiveTask, ev transitions.Event, code string, mutate func(*persist.Task)) bool {
	from := nt.t.State
	to, err := fsm.Step(from, ev)
	if err != nil {
		panic(fmt.Sprintf("naive: illegal move %s on %s: %v", from, ev, err))
	}
	now := time.Now()
	next := nt.t.Clone()
	next.State, next.Code, next.Updated = to, code, now
	if mutate != nil {
		mutate(next)
	}
	rec := &persist.Record{At: now, From: from, Event: ev, To: to, Code: code, ProviderID: next.ProviderID}
	if err := n.store.Apply(ctx, next, rec); err != nil {
		n.storeErrs.Add(1)
		nt.broken = true
		return false
	}
	n.transitions.Add(1)
	nt.t = next
	return true
}

// pause waits d (virtual inside a synctest bubble); false when ctx ends.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// solve drives one task to its end.
func (n *naiveEngine) solve(ctx context.Context, t *persist.Task, params map[string]string) {
	nt := &naiveTask{t: t, params: params}
	for ctx.Err() == nil && !nt.broken {
		switch nt.t.State {
		case states.Submitting:
			n.submit(ctx, nt)
		case states.Backoff:
			if !pause(ctx, time.Until(nt.t.NextAt)) {
				return
			}
			n.move(ctx, nt, transitions.BackoffElapsed, nt.t.Code, nil)
		case states.Polling:
			if !pause(ctx, time.Until(nt.t.NextAt)) {
				return
			}
			n.poll(ctx, nt)
		case states.Resubmitting:
			n.move(ctx, nt, transitions.ResubmitStarted, "", func(t *persist.Task) { t.ProviderID, t.Token = "", "" })
		default:
			return // Done, Failed or NeedsAccountFix
		}
	}
}

func (n *naiveEngine) submit(ctx context.Context, nt *naiveTask) {
	if err := n.limiter.Wait(ctx); err != nil {
		return
	}
	if !n.move(ctx, nt, transitions.SubmitSending, "", func(t *persist.Task) { t.Submits++ }) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, n.pol.RequestTimeout)
	pid, err := n.api.Submit(rctx, provider.Request{Method: nt.t.Method, Params: nt.params})
	cancel()
	n.submits.Add(1)
	if err == nil {
		now := time.Now()
		first := n.pol.FirstPollDelay
		if provider.IsTokenMethod(nt.t.Method) {
			first = n.pol.FirstPollDelayToken
		}
		n.move(ctx, nt, transitions.SubmitAccepted, "", func(t *persist.Task) {
			t.ProviderID, t.PollSince, t.NextAt = pid, now, now.Add(first)
		})
		return
	}
	var apiErr *provider.APIError
	var te *provider.TransportError
	switch {
	case errors.As(err, &apiErr):
		entry, _ := transitions.Lookup(apiErr.Code)
		switch {
		case entry.IsBan() && apiErr.Class == transitions.ClassTransient:
			ban := n.retryDelay(apiErr.Code, 1)
			n.move(ctx, nt, transitions.RateLimited, apiErr.Code, func(t *persist.Task) { t.NextAt = time.Now().Add(ban) })
		case apiErr.Class == transitions.ClassTransient:
			n.transient(ctx, nt, apiErr.Code)
		case apiErr.Class == transitions.ClassPermanent:
			n.move(ctx, nt, transitions.PermanentError, apiErr.Code, nil)
		case apiErr.Class == transitions.ClassAccount:
			n.move(ctx, nt, transitions.AccountError, apiErr.Code, nil)
		default:
			n.move(ctx, nt, transitions.UnknownError, apiErr.Code, nil)
		}
	case errors.As(err, &te):
		n.transient(ctx, nt, transitions.CodeTransport)
	default:
		n.move(ctx, nt, transitions.PermanentError, "INVALID_REQUEST", nil)
	}
}

func (n *naiveEngine) transient(ctx context.Context, nt *naiveTask, code string) {
	if nt.t.Retries >= max(n.pol.MaxRetries, 0) {
		n.move(ctx, nt, transitions.RetriesExhausted, code, nil)
		return
	}
	delay := n.retryDelay(code, nt.t.Retries+1)
	n.move(ctx, nt, transitions.TransientError, code, func(t *persist.Task) {
		t.Retries++
		t.NextAt = time.Now().Add(delay)
	})
}

// retryDelay follows the engine's rule: the policy's or the catalogue's
// delay for the code, a ban's length, else exponential backoff with ±20 %
// jitter.
func (n *naiveEngine) retryDelay(code string, attempt int) time.Duration {
	if d, ok := n.pol.RetryDelays[code]; ok {
		return d
	}
	entry, _ := transitions.Lookup(code)
	switch {
	case entry.Ban > 0:
		return entry.Ban
	case entry.RetryDelay > 0:
		return entry.RetryDelay
	}
	lo, hi := n.pol.BackoffBase, n.pol.BackoffMax
	if entry.BackoffMin > 0 {
		lo, hi = entry.BackoffMin, entry.BackoffMax
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = time.Duration(float64(min(d, hi)) * (0.8 + 0.4*rand.Float64()))
	return min(max(d, lo), hi)
}

// poll asks res.php for this one task.
func (n *naiveEngine) poll(ctx context.Context, nt *naiveTask) {
	rctx, cancel := context.WithTimeout(ctx, n.pol.RequestTimeout)
	answers, err := n.api.Poll(rctx, []string{nt.t.ProviderID})
	cancel()
	n.polls.Add(1)
	timedOut := time.Since(nt.t.PollSince) >= n.pol.PollTimeout
	again := func(ev transitions.Event, code string, wait time.Duration, polled int) {
		if timedOut {
			n.move(ctx, nt, transitions.PollTimeout, transitions.CodePollTimeout,
				func(t *persist.Task) { t.Polls += polled })
			return
		}
		n.move(ctx, nt, ev, code, func(t *persist.Task) {
			t.Polls += polled
			t.NextAt = time.Now().Add(wait)
		})
	}
	if err != nil {
		var apiErr *provider.APIError
		code := transitions.CodeTransport
		if errors.As(err, &apiErr) {
			code = apiErr.Code
		}
		again(transitions.TransientError, code, max(n.pol.PollInterval, n.retryDelay(code, 1)), 0)
		return
	}
	a := answers[0]
	if a.Token != "" {
		n.move(ctx, nt, transitions.Solved, "", func(t *persist.Task) {
			t.Polls++
			t.Token = a.Token
			t.NextAt = time.Time{}
		})
		return
	}
	polled := func(t *persist.Task) { t.Polls++ }
	switch a.Class {
	case transitions.ClassNotReady:
		again(transitions.NotReady, a.Code, n.pol.PollInterval, 1)
	case transitions.ClassTransient:
		again(transitions.TransientError, a.Code, max(n.pol.PollInterval, n.retryDelay(a.Code, 1)), 1)
	case transitions.ClassResubmit:
		if nt.t.Resubmits >= max(n.pol.MaxResubmits, 0) {
			n.move(ctx, nt, transitions.ResubmitsExhausted, a.Code, polled)
			return
		}
		n.move(ctx, nt, transitions.ResubmitNeeded, a.Code, func(t *persist.Task) {
			t.Polls++
			t.Resubmits++
			t.NextAt = time.Now()
		})
	case transitions.ClassPermanent:
		n.move(ctx, nt, transitions.PermanentError, a.Code, polled)
	case transitions.ClassAccount:
		n.move(ctx, nt, transitions.AccountError, a.Code, polled)
	default:
		n.move(ctx, nt, transitions.UnknownError, a.Code, polled)
	}
}
