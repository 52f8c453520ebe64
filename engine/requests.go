package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The requests a program makes of the provider beside the engine's own
// submits and polls — the balance, a task's price, a report on an answer —
// go through the engine too, so that they share its request slots and its
// res.php budget (a gateway's clients asking for their balance must not
// earn the account a ban).

// ReportAPI is implemented by APIs that can report an answer as right or
// wrong (res.php?action=reportgood / reportbad). *provider.Client does.
type ReportAPI interface {
	Report(ctx context.Context, id string, good bool) error
}

var _ ReportAPI = (*provider.Client)(nil)

// More sentinel errors, for the requests beside the solves.
var (
	// ErrUnsupported: the API cannot make this request.
	ErrUnsupported = errors.New("engine: the API does not support this request")
	// ErrBudgetSpent: the res.php budget of the hour is spent (kept under
	// the provider's rule); ask again in a minute.
	ErrBudgetSpent = errors.New("engine: the res.php budget of the hour is spent")
	// ErrNotReportable: only a Done task's answer can be reported.
	ErrNotReportable = errors.New("engine: the task has no answer to report")
	// ErrReported: the task's answer was reported already (once per task).
	ErrReported = errors.New("engine: the task was reported already")
)

// request runs one HTTP request of the engine's inside its request slots
// (Policy.Concurrency in flight at most, whatever sends them: submits,
// polls, price look-ups, probes, reports) and its request timeout.
func (e *Engine) request(ctx context.Context, do func(ctx context.Context) error) error {
	// Not given up at shutdown: a request whose intent is committed goes
	// out and its answer is recorded, as a graceful close promises.
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.slots }()
	rctx, cancel := context.WithTimeout(ctx, e.pol.RequestTimeout)
	defer cancel()
	return do(rctx)
}

// resPHP runs one res.php request that the scheduler did not plan: counted
// in the budget, refused with ErrBudgetSpent when the budget is spent, and
// waiting for any ban of res.php to end.
func (e *Engine) resPHP(ctx context.Context, do func(ctx context.Context) error) error {
	now := time.Now()
	if _, polls := e.lim.pauses(); now.Before(polls) {
		return fmt.Errorf("engine: res.php paused by a ban until %s: %w", polls.Format(time.RFC3339), ErrBudgetSpent)
	}
	if ok, _ := e.lim.pollAllowed(now); !ok {
		return ErrBudgetSpent
	}
	e.lim.notePoll(now)
	e.stats.polls.Add(1)
	return e.request(ctx, do)
}

// Balance asks the provider for the account's balance (a free getbalance
// request), inside the engine's request slots and res.php budget.
func (e *Engine) Balance(ctx context.Context) (string, error) {
	api, ok := e.api.(BalanceAPI)
	if !ok {
		return "", fmt.Errorf("engine: balance: %w", ErrUnsupported)
	}
	var balance string
	err := e.resPHP(ctx, func(ctx context.Context) (err error) {
		balance, err = api.Balance(ctx)
		return err
	})
	return balance, err
}

// Price returns the price of the answer of the task named by its id or
// ref: the one recorded with it (Config.FetchCost), else the provider's,
// asked once with get2 inside the engine's request slots and budget.
func (e *Engine) Price(ctx context.Context, key string) (string, error) {
	t, err := persist.Find(ctx, e.store, key)
	if err != nil {
		return "", fmt.Errorf("engine: price %s: %w", key, err)
	}
	if t.Cost != "" {
		return t.Cost, nil
	}
	if t.State != states.Done || t.ProviderID == "" {
		return "", fmt.Errorf("engine: price %s: %w", key, ErrNotReportable)
	}
	api, ok := e.api.(CostAPI)
	if !ok {
		return "", fmt.Errorf("engine: price: %w", ErrUnsupported)
	}
	var cost string
	err = e.resPHP(ctx, func(ctx context.Context) (err error) {
		_, cost, err = api.Cost(ctx, t.ProviderID)
		return err
	})
	return cost, err
}

// Report tells the provider that the answer of the task named by its id or
// ref was right (good) or wrong, once per task, inside the engine's request
// slots and budget, and records the report in the task's history (event
// reported, an annotation: the task stays Done). Only a Done task can be
// reported (ErrNotReportable); a second report is ErrReported. A provider
// that refuses the report answers with its *provider.APIError, and nothing
// is recorded.
func (e *Engine) Report(ctx context.Context, key string, good bool) error {
	api, ok := e.api.(ReportAPI)
	if !ok {
		return fmt.Errorf("engine: report: %w", ErrUnsupported)
	}
	t, err := persist.Find(ctx, e.store, key)
	if err != nil {
		return fmt.Errorf("engine: report %s: %w", key, err)
	}
	if t.State != states.Done || t.ProviderID == "" {
		return fmt.Errorf("engine: report %s: %s: %w", key, t.State, ErrNotReportable)
	}
	hist, err := e.store.History(ctx, t.ID)
	if err != nil {
		return fmt.Errorf("engine: report %s: %w", key, err)
	}
	for _, r := range hist {
		if r.Event == transitions.Reported {
			return fmt.Errorf("engine: report %s: %w", key, ErrReported)
		}
	}
	if err := e.resPHP(ctx, func(ctx context.Context) error { return api.Report(ctx, t.ProviderID, good) }); err != nil {
		return fmt.Errorf("engine: report %s: %w", key, err)
	}
	tr, err := RecordReport(ctx, e.store, t, good)
	if err != nil {
		return err
	}
	e.stats.transitions.Add(1)
	e.reg.announce(tr)
	return nil
}

// RecordReport records in t's history that a report on its answer was
// sent to the provider (good: the answer was right): the event reported,
// an annotation that leaves the task Done. Engine.Report sends and records;
// a program that sent the report itself (the CLI's report command, with no
// engine running) records it with this.
func RecordReport(ctx context.Context, store persist.Store, t *persist.Task, good bool) (Transition, error) {
	detail := "reportbad: the answer was wrong"
	if good {
		detail = "reportgood: the answer was right"
	}
	now := time.Now()
	next := t.Clone()
	next.Params, next.Updated = nil, now
	rec := &persist.Record{At: now, From: t.State, Event: transitions.Reported, To: t.State, Detail: detail, ProviderID: t.ProviderID}
	if err := store.Apply(ctx, next, rec); err != nil {
		return Transition{}, fmt.Errorf("engine: report %s: sent to the provider but not recorded: %w", t.ID, err)
	}
	return Transition{Task: TaskOf(next), Record: *rec}, nil
}
