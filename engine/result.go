package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Request is one solve to submit: what to solve (Method and Params), the
// caller's name for it (Ref), and the task's own options, whose zero
// values mean the engine's. Its JSON form, a line of `captchafsm run
// --from`, carries method, params, ref and labels only.
type Request struct {
	// Method is the provider's method (post, base64, userrecaptcha, ...).
	Method string `json:"method"`
	// Params are the method's parameters (never the API key).
	Params map[string]string `json:"params,omitempty"`
	// Ref is an optional name of the caller's; unique in the store.
	Ref string `json:"ref,omitempty"`
	// IfRefExists says what a Ref that names a stored task does: attach
	// to it when it is the same request (RefAttach, the zero value), or
	// fail (RefUnique).
	IfRefExists RefMode `json:"-"`

	// Deadline, when set, is when the task ends Failed with code
	// DEADLINE_EXCEEDED if it has no answer by then: nothing more is sent
	// for it (an answer already on its way is still taken). It is kept
	// with the task, so it holds across a restart. A task parked in
	// NeedsAccountFix waits for the account whatever its deadline, and
	// fails once released if it has passed.
	Deadline time.Time `json:"-"`
	// Priority orders the tasks due to be submitted: among the tasks whose
	// next-action time has come, higher priorities are sent first, then
	// earlier due times. No task is sent before its time whatever its
	// priority. Polls are batched by due time and do not look at it.
	// Any value that fits in 32 bits; default 0.
	Priority int `json:"-"`
	// MaxRetries and MaxResubmits replace Policy.MaxRetries and
	// Policy.MaxResubmits for this task: 0 keeps the policy's, a negative
	// value allows none, at most 100.
	MaxRetries   int `json:"-"`
	MaxResubmits int `json:"-"`
	// Labels are the caller's own data about the task (a callback URL, an
	// order number), kept with it across restarts, returned in its Task
	// and never sent to the provider: at most persist.MaxLabels, keys of 1
	// to persist.MaxLabelKeyLen bytes, persist.MaxLabelsLen bytes in all.
	// A request that attaches to a stored task keeps that task's labels.
	Labels map[string]string `json:"labels,omitempty"`
}

// RefMode says what a request whose Ref names a stored task does.
type RefMode int

const (
	// RefAttach (the zero value): a stored task of the same method and
	// parameters is the request's task; Submit adds nothing and returns
	// its id (Enqueue says Attached). A task of another request fails
	// with ErrRefConflict. Its options stay as they were stored.
	RefAttach RefMode = iota
	// RefUnique: any stored task with the ref fails the request with
	// ErrRefExists: the ref must be new.
	RefUnique
)

// maxTaskCount bounds a request's MaxRetries and MaxResubmits, as the
// policy's.
const maxTaskCount = maxCount

// validate checks r before anything is stored or sent: its method and
// parameters (provider.Validate), its ref and its options.
func (r Request) validate() error {
	if err := provider.Validate(provider.Request{Method: r.Method, Params: r.Params}); err != nil {
		return err
	}
	if err := persist.ValidateRef(r.Ref); err != nil {
		return err
	}
	switch {
	case r.IfRefExists != RefAttach && r.IfRefExists != RefUnique:
		return &RequestError{Field: "if_ref_exists", Problem: fmt.Sprintf("unknown mode %d: want RefAttach or RefUnique", r.IfRefExists)}
	case r.MaxRetries > maxTaskCount:
		return &RequestError{Field: "max_retries", Problem: fmt.Sprintf("at most %d (got %d)", maxTaskCount, r.MaxRetries)}
	case r.MaxResubmits > maxTaskCount:
		return &RequestError{Field: "max_resubmits", Problem: fmt.Sprintf("at most %d (got %d)", maxTaskCount, r.MaxResubmits)}
	}
	if err := persist.ValidateOptions(r.options()); err != nil {
		if oe, ok := errors.AsType[*persist.OptionError](err); ok {
			return &RequestError{Field: oe.Field, Problem: oe.Problem}
		}
		return err
	}
	return nil
}

// options are r's options as the store keeps them, sharing r's Labels
// (NewTask copies them). Negative limits are kept as -1: every negative
// value means none.
func (r Request) options() persist.TaskOptions {
	o := persist.TaskOptions{Deadline: r.Deadline, Priority: r.Priority, MaxRetries: r.MaxRetries, MaxResubmits: r.MaxResubmits,
		Labels: r.Labels}
	o.MaxRetries, o.MaxResubmits = max(o.MaxRetries, -1), max(o.MaxResubmits, -1)
	return o
}

// RequestError is a request refused before anything was stored or sent
// for an option of the engine's (its method and parameters are checked by
// provider.Validate, whose *provider.FieldError it matches in kind: both
// match provider.ErrInvalid).
type RequestError struct {
	// Field names the option as policy files and JSON spell it
	// ("max_retries", "priority").
	Field   string
	Problem string
}

func (e *RequestError) Error() string { return "engine: " + e.Field + ": " + e.Problem }

// Is matches provider.ErrInvalid: the request is wrong and nothing was
// sent.
func (e *RequestError) Is(target error) bool { return target == provider.ErrInvalid }

// resultOf is a settled task's view (without Params, which only Get
// returns), with a *TaskError unless it is Done.
func resultOf(t *persist.Task) (*Task, error) {
	v := TaskOf(t)
	v.Params = nil
	r := &v
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
	// Task is the task after the move (without Params).
	Task Task
	// Record is the move, as the task's history keeps it.
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
	// ErrRefExists: a request with IfRefExists RefUnique names a ref that
	// a stored task has. Nothing was stored or sent.
	ErrRefExists = errors.New("engine: ref names a stored task")
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
	// Held is a gauge: the tasks the engine holds in memory now (a lone
	// engine pages the rest in as they fall due).
	Held int64
}
