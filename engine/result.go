package engine

import (
	"errors"
	"fmt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Request is one solve to submit.
type Request struct {
	// Method is the provider's method (post, base64, userrecaptcha, ...).
	Method string `json:"method"`
	// Params are the method's parameters (never the API key).
	Params map[string]string `json:"params,omitempty"`
	// Ref is an optional name of the caller's; unique in the store.
	Ref string `json:"ref,omitempty"`
}

// Result is a task's outcome.
type Result struct {
	ID        string       `json:"id"`
	Ref       string       `json:"ref"`
	State     states.State `json:"state"`
	Token     string       `json:"token"`
	Code      string       `json:"code"`
	Submits   int          `json:"submits"`
	Polls     int          `json:"polls"`
	Resubmits int          `json:"resubmits"`
	Cost      string       `json:"cost"`
}

// ResultOf returns t's outcome.
func ResultOf(t *persist.Task) *Result {
	return &Result{ID: t.ID, Ref: t.Ref, State: t.State, Token: t.Token, Code: t.Code,
		Submits: t.Submits, Polls: t.Polls, Resubmits: t.Resubmits, Cost: t.Cost}
}

// resultOf is a settled task's Result, with a *TaskError unless it is Done.
func resultOf(t *persist.Task) (*Result, error) {
	r := ResultOf(t)
	if t.State == states.Done {
		return r, nil
	}
	var class transitions.Class
	if t.Code != "" {
		class = transitions.Classify(t.Code)
	}
	return r, &TaskError{ID: t.ID, State: t.State, Code: t.Code, Class: class}
}

// Transition is one committed move, as the hook and subscribers see it.
type Transition struct {
	Task   *persist.Task // the task after the move (without Params)
	Record persist.Record
}

// TaskError is returned by Wait and Solve for a task that ended without an
// answer. errors.Is matches ErrFailed or ErrNeedsAccountFix by its state.
type TaskError struct {
	ID    string
	State states.State
	Code  string
	Class transitions.Class
}

func (e *TaskError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("engine: task %s ended %s", e.ID, e.State)
	}
	return fmt.Sprintf("engine: task %s ended %s: %s (%s)", e.ID, e.State, e.Code, e.Class)
}

// Is matches ErrFailed and ErrNeedsAccountFix.
func (e *TaskError) Is(target error) bool {
	switch target {
	case ErrFailed:
		return e.State == states.Failed
	case ErrNeedsAccountFix:
		return e.State == states.NeedsAccountFix
	}
	return false
}

// Sentinel errors.
var (
	// ErrFailed matches a TaskError of a Failed task.
	ErrFailed = errors.New("engine: task failed")
	// ErrNeedsAccountFix matches a TaskError of a task parked until a person
	// fixes the account.
	ErrNeedsAccountFix = errors.New("engine: task needs an account fix")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("engine: closed")
	// ErrNotCancellable: the task is terminal or parked in NeedsAccountFix.
	ErrNotCancellable = errors.New("engine: task cannot be cancelled in its state")
	// ErrRefConflict: a request names a ref that a task with another
	// method or other parameters already has. Nothing was stored or sent.
	ErrRefConflict = errors.New("engine: ref names another request")
)

// PendingError is returned by Wait and Solve when the caller's context ends
// before the task settles. The caller stopped waiting; the task goes on,
// and Wait with its id or ref collects it later (a restarted bot collects
// its answers that way). errors.Is matches the context's error.
type PendingError struct {
	ID    string
	Ref   string
	State states.State // the task's state when the wait stopped
	Err   error        // the context's error
}

func (e *PendingError) Error() string {
	name := e.ID
	if e.Ref != "" {
		name = fmt.Sprintf("%s (ref %q)", e.ID, e.Ref)
	}
	return fmt.Sprintf("engine: stopped waiting for task %s, still %s: %v; the task goes on: collect it with Wait(ctx, %q)",
		name, e.State, e.Err, e.ID)
}

// Unwrap returns the context's error.
func (e *PendingError) Unwrap() error { return e.Err }

// Stats are the engine's counters since Open.
type Stats struct {
	Transitions     int64 // committed transitions
	SubmitRequests  int64 // in.php requests sent
	PollRequests    int64 // res.php requests sent
	PolledAnswers   int64 // answers received for tasks (a batch gives many)
	Retries         int64 // transient errors that led to a backoff
	Resubmits       int64 // new provider tasks after a resubmit code
	BansWaited      int64 // ban codes answered (the engine waited each out)
	BreakerTrips    int64 // account errors that opened the breaker
	PossiblyCharged int64 // submits recorded as possibly charged
	StoreErrors     int64 // transitions the store refused or failed to commit
	AccountProbes   int64 // getbalance requests of the half-open breaker
	// Unrecorded is a gauge: the in.php answers held in memory now because
	// the store failed to record them (no new in.php leaves meanwhile).
	Unrecorded int64
}
