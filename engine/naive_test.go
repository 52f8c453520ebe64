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
// rule tolerates (19/s with a burst of 1; the engine, at the default
// submit_rate, sends 18/s in groups of 3), and the same store writes: every transition is one
// persist.Store.Apply of the same record the engine would write, checked by
// fsm.Step. It has no breaker (an account error parks the one task), no
// engine-wide ban (each task waits a ban out on its own) and no resume.
type naiveEngine struct {
	store   persist.Store
	api     engine.API
	pol     engine.Policy
	limiter *rate.Limiter
	coster  engine.CostAPI // when set, one get2 per solve, as clients do

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

// decide asks the engine's decision table what in calls for. The naive
// solver has no breaker (BreakerOpen is never set) and ignores the
// decisions' engine-wide effects: a ban is waited out by the one task that
// met it.
func (n *naiveEngine) decide(nt *naiveTask, in transitions.Input) transitions.Decision {
	t := nt.t
	in.State = t.State
	if in.What == transitions.Due {
		in.Code = t.Code
	}
	in.Retries, in.Resubmits, in.PollSince = t.Retries, t.Resubmits, t.PollSince
	in.TokenMethod = provider.IsTokenMethod(t.Method)
	in.Now, in.Jitter, in.Limits = time.Now(), rand.Float64(), n.pol.Limits()
	d, err := transitions.Decide(in)
	if err != nil {
		panic(fmt.Sprintf("naive: %v", err))
	}
	return d
}

// move commits one decision as the engine does: built by fsm.Apply, the
// record and the task's new fields in one Apply of the store.
func (n *naiveEngine) move(ctx context.Context, nt *naiveTask, d transitions.Decision) bool {
	next, rec, err := fsm.Apply(nt.t, d)
	if err != nil {
		panic(fmt.Sprintf("naive: illegal move %s on %s: %v", nt.t.State, d.Event, err))
	}
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
		case states.Backoff, states.Resubmitting:
			if !pause(ctx, time.Until(nt.t.NextAt)) {
				return
			}
			n.move(ctx, nt, n.decide(nt, transitions.Input{What: transitions.Due}))
		case states.Polling:
			if !pause(ctx, time.Until(nt.t.NextAt)) {
				return
			}
			n.poll(ctx, nt)
		default:
			return // Done, Failed or NeedsAccountFix
		}
	}
}

func (n *naiveEngine) submit(ctx context.Context, nt *naiveTask) {
	if err := n.limiter.Wait(ctx); err != nil {
		return
	}
	if !n.move(ctx, nt, n.decide(nt, transitions.Input{What: transitions.Due})) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, n.pol.RequestTimeout)
	pid, err := n.api.Submit(rctx, provider.Request{Method: nt.t.Method, Params: nt.params})
	cancel()
	n.submits.Add(1)
	in := transitions.Input{What: transitions.Accepted, ProviderID: pid}
	if err != nil {
		in = naiveAnswer(err)
	}
	n.move(ctx, nt, n.decide(nt, in))
}

// naiveAnswer is the decision input for a failed request.
func naiveAnswer(err error) transitions.Input {
	in := transitions.Input{What: transitions.Answer, Code: transitions.CodeInvalidRequest, Detail: err.Error()}
	var apiErr *provider.APIError
	var te *provider.TransportError
	switch {
	case errors.As(err, &apiErr):
		in.Code, in.Detail = apiErr.Code, ""
	case errors.As(err, &te):
		in.Code, in.Charged = transitions.CodeTransport, te.PossiblyCharged
	}
	return in
}

// poll asks res.php for this one task.
func (n *naiveEngine) poll(ctx context.Context, nt *naiveTask) {
	rctx, cancel := context.WithTimeout(ctx, n.pol.RequestTimeout)
	answers, err := n.api.Poll(rctx, []string{nt.t.ProviderID})
	cancel()
	n.polls.Add(1)
	var in transitions.Input
	switch {
	case err != nil:
		in = naiveAnswer(err)
		if in.Code == transitions.CodeInvalidRequest {
			in.Code = transitions.CodeTransport
		}
	case answers[0].Token != "":
		in = transitions.Input{What: transitions.Token, Token: answers[0].Token, Polled: true}
		if n.coster != nil {
			rctx, cancel := context.WithTimeout(ctx, n.pol.RequestTimeout)
			_, in.Cost, _ = n.coster.Cost(rctx, nt.t.ProviderID)
			cancel()
		}
	default:
		in = transitions.Input{What: transitions.Answer, Code: answers[0].Code, Polled: true}
	}
	n.move(ctx, nt, n.decide(nt, in))
}
