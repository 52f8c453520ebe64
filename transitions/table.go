package transitions

import (
	"fmt"

	"github.com/captchafsm/captchafsm/states"
)

// Event names a move of the machine. Events are named for what causes them;
// the names are stored in every history record.
type Event string

// The events.
const (
	// Created is the first record of every history: the task enters
	// Submitting. It is not an edge of the table (it has no source state).
	Created Event = "created"
	// SubmitSending records the intent to send in.php, committed before the
	// request leaves. A history that ends with it after a crash means the
	// submit may have reached the provider.
	SubmitSending Event = "submit_sending"
	// PossiblyCharged records, on resume or after a transport failure whose
	// request may have arrived, that a submit may have been charged.
	PossiblyCharged Event = "possibly_charged"
	// SubmitAccepted: in.php answered OK with a provider task id.
	SubmitAccepted Event = "submit_accepted"
	// TransientError: a transient code or transport trouble.
	TransientError Event = "transient_error"
	// RateLimited: a ban code; the engine waits the ban out without charging
	// the task a retry.
	RateLimited Event = "rate_limited"
	// BackoffElapsed: the backoff's next-action time has come.
	BackoffElapsed Event = "backoff_elapsed"
	// PermanentError: a permanent code; the task is never sent again.
	PermanentError Event = "permanent_error"
	// AccountError: an account code; the breaker opens.
	AccountError Event = "account_error"
	// BreakerOpen: the task was about to submit (or waiting to) while the
	// breaker was open; it is parked without sending.
	BreakerOpen Event = "breaker_open"
	// NotReady: res.php answered CAPCHA_NOT_READY.
	NotReady Event = "not_ready"
	// Solved: res.php answered with the token.
	Solved Event = "solved"
	// ResubmitNeeded: a resubmit code (UNSOLVABLE, TOKEN_EXPIRED).
	ResubmitNeeded Event = "resubmit_needed"
	// ResubmitStarted: the new task's submit begins.
	ResubmitStarted Event = "resubmit_started"
	// RetriesExhausted: a transient error after max_retries retries.
	RetriesExhausted Event = "retries_exhausted"
	// ResubmitsExhausted: a resubmit code after max_resubmits resubmits.
	ResubmitsExhausted Event = "resubmits_exhausted"
	// PollTimeout: poll_timeout passed without an answer.
	PollTimeout Event = "poll_timeout"
	// UnknownError: a code the catalogue does not hold.
	UnknownError Event = "unknown_error"
	// AccountFixed: a person said the account is fixed.
	AccountFixed Event = "account_fixed"
	// Cancelled: the task was cancelled.
	Cancelled Event = "cancelled"
	// DeadlinePassed: the task's own deadline passed before it had an
	// answer (code DEADLINE_EXCEEDED).
	DeadlinePassed Event = "deadline_passed"
	// Reported notes that a report on the task's answer (reportgood or
	// reportbad) was sent to the provider. It is an annotation, not an
	// edge: its record leaves the task in the state it was (Done).
	Reported Event = "reported"
)

// Annotations lists the events that note something about a task without
// moving it: their records have From equal to To, and replay passes over
// them.
func Annotations() []Event { return []Event{Reported} }

// IsAnnotation reports whether ev notes without moving (see Annotations).
func IsAnnotation(ev Event) bool { return ev == Reported }

// Edge is one row of the transition table.
type Edge struct {
	From  states.State
	Event Event
	To    states.State
	// Why says when the engine takes this edge, for the generated docs.
	Why string
}

// table is the single source of truth for the machine. The fsm package
// builds looplab/fsm machines from it, and docs/states.md is generated from it.
var table = []Edge{
	{states.Submitting, SubmitSending, states.Submitting, "the intent to send in.php is committed before the request leaves"},
	{states.Submitting, PossiblyCharged, states.Submitting, "a submit may have reached the provider without its answer being recorded"},
	{states.Submitting, SubmitAccepted, states.Polling, "in.php answered OK; the provider id is committed and the first poll scheduled"},
	{states.Submitting, TransientError, states.Backoff, "a transient code or transport trouble; wait the code's delay or the backoff"},
	{states.Submitting, RateLimited, states.Backoff, "a ban code; the whole engine waits the ban out, no retry is counted"},
	{states.Submitting, RetriesExhausted, states.Failed, "a transient error after max_retries retries"},
	{states.Submitting, PermanentError, states.Failed, "a permanent code; never sent again"},
	{states.Submitting, AccountError, states.NeedsAccountFix, "an account code; the breaker opens and all submits stop"},
	{states.Submitting, BreakerOpen, states.NeedsAccountFix, "the breaker is open; parked without sending"},
	{states.Submitting, UnknownError, states.Failed, "a code the catalogue does not hold; the raw code is kept"},
	{states.Submitting, Cancelled, states.Failed, "cancelled by the caller"},
	{states.Submitting, DeadlinePassed, states.Failed, "the task's deadline passed before it was sent or accepted (code DEADLINE_EXCEEDED)"},

	{states.Backoff, BackoffElapsed, states.Submitting, "the backoff's next-action time has come"},
	{states.Backoff, BreakerOpen, states.NeedsAccountFix, "the breaker opened while the task waited to submit again; parked without sending"},
	{states.Backoff, Cancelled, states.Failed, "cancelled by the caller"},
	{states.Backoff, DeadlinePassed, states.Failed, "the task's deadline passed during the backoff (code DEADLINE_EXCEEDED)"},

	{states.Polling, NotReady, states.Polling, "CAPCHA_NOT_READY; poll again after poll_interval"},
	{states.Polling, TransientError, states.Polling, "a transient code or transport trouble on res.php; poll again later (the task is paid, never resent)"},
	{states.Polling, RateLimited, states.Polling, "a ban code on res.php; poll again once the ban is over"},
	{states.Polling, Solved, states.Done, "res.php answered with the token"},
	{states.Polling, ResubmitNeeded, states.Resubmitting, "UNSOLVABLE or TOKEN_EXPIRED, resubmits left"},
	{states.Polling, ResubmitsExhausted, states.Failed, "a resubmit code after max_resubmits resubmits"},
	{states.Polling, PollTimeout, states.Failed, "no answer within poll_timeout (code POLL_TIMEOUT)"},
	{states.Polling, PermanentError, states.Failed, "a permanent code on res.php"},
	{states.Polling, AccountError, states.NeedsAccountFix, "an account code on res.php; the breaker opens"},
	{states.Polling, UnknownError, states.Failed, "a code the catalogue does not hold; the raw code is kept"},
	{states.Polling, Cancelled, states.Failed, "cancelled by the caller"},
	{states.Polling, DeadlinePassed, states.Failed, "the task's deadline passed before its answer (code DEADLINE_EXCEEDED); it is not polled again"},

	{states.Resubmitting, ResubmitStarted, states.Submitting, "a new task with the same parameters is submitted"},
	{states.Resubmitting, BreakerOpen, states.NeedsAccountFix, "the breaker opened before the new task was sent; parked without sending"},
	{states.Resubmitting, Cancelled, states.Failed, "cancelled by the caller"},
	{states.Resubmitting, DeadlinePassed, states.Failed, "the task's deadline passed before the new task was sent (code DEADLINE_EXCEEDED)"},

	{states.NeedsAccountFix, AccountFixed, states.Submitting, "a person ran account-fixed; the task is submitted again"},
}

// Table returns every edge of the machine, in a stable order. The slice is a
// copy.
func Table() []Edge { return append([]Edge(nil), table...) }

// Events returns every event that appears in the table, in table order,
// without duplicates. Created is not among them.
func Events() []Event {
	seen := map[Event]bool{}
	var out []Event
	for _, e := range table {
		if !seen[e.Event] {
			seen[e.Event] = true
			out = append(out, e.Event)
		}
	}
	return out
}

// Next returns the state that event leads to from from, or an error when the
// table has no such edge.
func Next(from states.State, event Event) (states.State, error) {
	for _, e := range table {
		if e.From == from && e.Event == event {
			return e.To, nil
		}
	}
	return "", fmt.Errorf("transitions: no edge from %s on %q", from, event)
}

// InDoubt reports whether a history whose last record has event last
// leaves a submit in doubt: the intent to send in.php was committed and
// nothing after it, so the request may have reached the provider (and been
// charged) without its answer being recorded.
func InDoubt(last Event) bool { return last == SubmitSending }

// Initial is the state every task starts in.
const Initial = states.Submitting

// The engine's own codes, written into history for outcomes that are not
// provider answers. Each is a catalogue entry (Where: Engine) with a class.
const (
	// CodePollTimeout: poll_timeout passed without an answer.
	CodePollTimeout = "POLL_TIMEOUT"
	// CodeCancelled: the task was cancelled.
	CodeCancelled = "CANCELLED"
	// CodeTransport: the request failed below the API (connection, timeout,
	// HTTP 5xx, an unreadable body).
	CodeTransport = "TRANSPORT_ERROR"
	// CodeBreakerOpen: the task was parked because the breaker was open.
	CodeBreakerOpen = "BREAKER_OPEN"
	// CodeInvalidRequest: the stored request no longer passes validation.
	CodeInvalidRequest = "INVALID_REQUEST"
	// CodeDeadline: the task's own deadline passed before it had an answer.
	CodeDeadline = "DEADLINE_EXCEEDED"
)
