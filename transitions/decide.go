package transitions

import (
	"fmt"
	"time"

	"github.com/captchafsm/captchafsm/states"
)

// What names what happened to a task: the input a decision is about.
type What string

// The things that happen to a task.
const (
	// Due: the task's next-action time has come (a submit, a backoff's
	// end, a resubmit; for a polling task, only its deadline: a poll's
	// answer is what moves it otherwise).
	Due What = "due"
	// Accepted: in.php answered OK with the provider's task id.
	Accepted What = "accepted"
	// Token: res.php answered with the solution.
	Token What = "token"
	// Answer: an answer carried a code: the provider's, or one of the
	// engine's own for trouble below the API (TRANSPORT_ERROR) or a request
	// that no longer validates (INVALID_REQUEST). Its class comes from the
	// catalogue.
	Answer What = "answer"
	// Cancel: the caller cancelled the task.
	Cancel What = "cancel"
	// Fixed: the account was found or declared usable again.
	Fixed What = "account fixed"
)

// Guard is a condition a rule needs besides its state, what happened and
// the answer's class.
type Guard string

// The guards.
const (
	Always         Guard = ""
	IfPastDeadline Guard = "the task's deadline has passed"
	IfInDoubt      Guard = "a submit is in doubt"
	IfBreakerOpen  Guard = "the breaker is open"
	IfBan          Guard = "the code announces a ban"
	IfKeyWide      Guard = "the code is about the API key"
	IfTimedOut     Guard = "poll_timeout has passed"
	IfRetriesLeft  Guard = "retries left"
	IfRetriesSpent Guard = "max_retries spent"
	IfResubsLeft   Guard = "resubmits left"
	IfResubsSpent  Guard = "max_resubmits spent"
)

// Wait says when a task acts next after a decision.
type Wait string

// The waits.
const (
	// NoWait: the task has no next action (it ended or is parked).
	NoWait Wait = ""
	// Now: at once.
	Now Wait = "now"
	// Unchanged: the next-action time stays as it was.
	Unchanged Wait = "unchanged"
	// FirstPoll: first_poll_delay (first_poll_delay_token for token methods).
	FirstPoll Wait = "first_poll_delay"
	// PollInterval: poll_interval.
	PollInterval Wait = "poll_interval"
	// PollRetry: the longer of poll_interval and the code's retry delay.
	PollRetry Wait = "max(poll_interval, retry delay)"
	// RetryDelay: the code's delay (policy, then catalogue), else exponential
	// backoff with jitter.
	RetryDelay Wait = "retry delay"
	// BanEnd: when the ban the code announces ends.
	BanEnd Wait = "ban's end"
)

// CodeRule says which code a decision records in the task.
type CodeRule string

// The code rules. Any other value is a literal code.
const (
	NoCode     CodeRule = ""
	AnswerCode CodeRule = "the answer's"
	KeptCode   CodeRule = "kept"
)

// Change names what a decision changes in the task beyond its state, code
// and next-action time.
type Change string

// The changes.
const (
	NoChange Change = ""
	// CountSubmit counts an in.php request sent (or possibly sent).
	CountSubmit Change = "submits + 1"
	// CountRetry counts a retry against max_retries.
	CountRetry Change = "retries + 1"
	// CountResubmit counts a resubmit against max_resubmits.
	CountResubmit Change = "resubmits + 1"
	// StartPolling records the provider's task id and starts the poll
	// timeout's clock.
	StartPolling Change = "provider id recorded, poll clock started"
	// NewProviderTask forgets the provider task that could not be solved.
	NewProviderTask Change = "provider id and token cleared"
	// TakeToken records the answer.
	TakeToken Change = "token recorded"
)

// Effect is something the engine does beyond the task, once the task's
// move is committed.
type Effect string

// The effects.
const (
	// Send: send in.php (the intent is durable).
	Send Effect = "send in.php"
	// OpenBreaker: stop every submit of the engine (account class).
	OpenBreaker Effect = "open the breaker"
	// Ban: stop the requests the ban covers engine-wide until it ends (when
	// the code announces one).
	Ban Effect = "wait out the code's ban, if it has one"
)

// Rule is one row of the decision table: when a task in From meets What
// (with an answer of Class, "" for any) and If holds, the engine takes
// Event, records Code, schedules the next action by Wait, makes Change and
// runs Effects after the commit.
type Rule struct {
	From    states.State
	What    What
	Class   Class
	If      Guard
	Event   Event
	Code    CodeRule
	Wait    Wait
	Change  Change
	Effects []Effect
}

// rules is the decision table. For each (state, what happened) the first
// row whose class and guard match decides.
var rules = []Rule{
	{From: states.Submitting, What: Due, If: IfPastDeadline, Event: DeadlinePassed, Code: CodeDeadline},
	{From: states.Submitting, What: Due, If: IfInDoubt, Event: PossiblyCharged, Wait: Unchanged},
	{From: states.Submitting, What: Due, If: IfBreakerOpen, Event: BreakerOpen, Code: CodeBreakerOpen},
	{From: states.Submitting, What: Due, Event: SubmitSending, Wait: Unchanged, Change: CountSubmit, Effects: []Effect{Send}},
	{From: states.Submitting, What: Accepted, Event: SubmitAccepted, Wait: FirstPoll, Change: StartPolling},
	{From: states.Submitting, What: Answer, Class: ClassTransient, If: IfBan, Event: RateLimited, Code: AnswerCode, Wait: BanEnd, Effects: []Effect{Ban}},
	{From: states.Submitting, What: Answer, Class: ClassTransient, If: IfRetriesLeft, Event: TransientError, Code: AnswerCode, Wait: RetryDelay, Change: CountRetry},
	{From: states.Submitting, What: Answer, Class: ClassTransient, If: IfRetriesSpent, Event: RetriesExhausted, Code: AnswerCode},
	{From: states.Submitting, What: Answer, Class: ClassPermanent, If: IfKeyWide, Event: PermanentError, Code: AnswerCode, Effects: []Effect{OpenBreaker}},
	{From: states.Submitting, What: Answer, Class: ClassPermanent, Event: PermanentError, Code: AnswerCode},
	{From: states.Submitting, What: Answer, Class: ClassAccount, Event: AccountError, Code: AnswerCode, Effects: []Effect{OpenBreaker, Ban}},
	{From: states.Submitting, What: Answer, Event: UnknownError, Code: AnswerCode},
	{From: states.Submitting, What: Cancel, Event: Cancelled, Code: CodeCancelled},

	{From: states.Backoff, What: Due, If: IfPastDeadline, Event: DeadlinePassed, Code: CodeDeadline},
	{From: states.Backoff, What: Due, If: IfBreakerOpen, Event: BreakerOpen, Code: CodeBreakerOpen},
	{From: states.Backoff, What: Due, Event: BackoffElapsed, Code: KeptCode, Wait: Now},
	{From: states.Backoff, What: Cancel, Event: Cancelled, Code: CodeCancelled},

	{From: states.Polling, What: Due, If: IfPastDeadline, Event: DeadlinePassed, Code: CodeDeadline},
	{From: states.Polling, What: Token, Event: Solved, Change: TakeToken},
	{From: states.Polling, What: Answer, Class: ClassTransient, If: IfBan, Event: RateLimited, Code: AnswerCode, Wait: BanEnd, Effects: []Effect{Ban}},
	{From: states.Polling, What: Answer, Class: ClassNotReady, If: IfTimedOut, Event: PollTimeout, Code: CodePollTimeout},
	{From: states.Polling, What: Answer, Class: ClassTransient, If: IfTimedOut, Event: PollTimeout, Code: CodePollTimeout},
	{From: states.Polling, What: Answer, Class: ClassNotReady, Event: NotReady, Code: AnswerCode, Wait: PollInterval},
	{From: states.Polling, What: Answer, Class: ClassTransient, Event: TransientError, Code: AnswerCode, Wait: PollRetry},
	{From: states.Polling, What: Answer, Class: ClassResubmit, If: IfResubsLeft, Event: ResubmitNeeded, Code: AnswerCode, Wait: Now, Change: CountResubmit},
	{From: states.Polling, What: Answer, Class: ClassResubmit, If: IfResubsSpent, Event: ResubmitsExhausted, Code: AnswerCode},
	// A code about the key (a restart with a mistyped key) says nothing
	// of a task the right key paid for: it parks, as an account code does.
	{From: states.Polling, What: Answer, Class: ClassPermanent, If: IfKeyWide, Event: AccountError, Code: AnswerCode, Effects: []Effect{OpenBreaker}},
	{From: states.Polling, What: Answer, Class: ClassPermanent, Event: PermanentError, Code: AnswerCode},
	{From: states.Polling, What: Answer, Class: ClassAccount, Event: AccountError, Code: AnswerCode, Effects: []Effect{OpenBreaker, Ban}},
	{From: states.Polling, What: Answer, Event: UnknownError, Code: AnswerCode},
	{From: states.Polling, What: Cancel, Event: Cancelled, Code: CodeCancelled},

	{From: states.Resubmitting, What: Due, If: IfPastDeadline, Event: DeadlinePassed, Code: CodeDeadline},
	{From: states.Resubmitting, What: Due, If: IfBreakerOpen, Event: BreakerOpen, Code: CodeBreakerOpen},
	{From: states.Resubmitting, What: Due, Event: ResubmitStarted, Wait: Now, Change: NewProviderTask},
	{From: states.Resubmitting, What: Cancel, Event: Cancelled, Code: CodeCancelled},

	{From: states.NeedsAccountFix, What: Fixed, Event: AccountFixed, Wait: Now},
}

// Rules returns the decision table, in the order Decide reads it. The
// slice is a copy.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = r
		out[i].Effects = append([]Effect(nil), r.Effects...)
	}
	return out
}

// Limits are the policy's figures a decision needs (with the task's own
// limits in place of the policy's, where it has them).
type Limits struct {
	// MaxRetries and MaxResubmits cap retries and resubmits (negative or
	// zero: none).
	MaxRetries, MaxResubmits int
	// FirstPollDelay and FirstPollDelayToken are the waits before a new
	// provider task's first poll (image methods, token methods).
	FirstPollDelay, FirstPollDelayToken time.Duration
	// PollInterval is the wait between polls of a task.
	PollInterval time.Duration
	// PollTimeout is how long a provider task may stay unanswered.
	PollTimeout time.Duration
	// BackoffBase and BackoffMax bound the exponential backoff.
	BackoffBase, BackoffMax time.Duration
	// RetryDelays overrides the catalogue's retry delay (and ban length)
	// per code.
	RetryDelays map[string]time.Duration
}

// Input is everything a decision depends on.
type Input struct {
	// State is the task's state.
	State states.State
	// What happened.
	What What
	// Code is the answer's code when What is Answer.
	Code string
	// Detail is a note on the answer (a transport error's text, the
	// provider's error_text), kept in the history's detail.
	Detail string
	// ProviderID is the provider's task id when What is Accepted; Token and
	// Cost are the answer and its price when What is Token.
	ProviderID, Token, Cost string
	// Polled: res.php answered for this very task (a whole request's
	// failure is not an answer); it counts in the task's polls.
	Polled bool
	// Charged: the request may have reached the provider and been charged
	// although its answer was lost. A possibly_charged decision is charged
	// whatever Charged says.
	Charged bool
	// BreakerOpen: the engine's account breaker is open.
	BreakerOpen bool
	// InDoubt: the task's last record is the intent to submit, written by a
	// process (or attempt) whose request may have left.
	InDoubt bool
	// TokenMethod: the task's method is a token method (reCAPTCHA class),
	// which is polled later.
	TokenMethod bool
	// Retries and Resubmits are the task's counters; PollSince is when its
	// provider task was accepted (zero: none).
	Retries, Resubmits int
	PollSince          time.Time
	// Deadline is the task's own deadline (zero: none). No wait a
	// decision sets ends after it, so the task is due when it passes.
	Deadline time.Time
	// Now is the decision's time, Jitter a uniform draw in [0, 1) for the
	// backoff.
	Now    time.Time
	Jitter float64
	// Limits are the policy's figures.
	Limits Limits
}

// Decision is what the engine does about an Input.
type Decision struct {
	// Rule is the row that decided.
	Rule Rule
	// At is the decision's time (Input.Now).
	At time.Time
	// Event moves the task; Code and Detail go into its record (Code into
	// the task too).
	Event  Event
	Code   string
	Detail string
	// Next is the task's next-action time; zero: none. KeepNext: leave it
	// as it is.
	Next     time.Time
	KeepNext bool
	// Change is the change to the task's fields; ProviderID, Token and
	// Cost are its values, from the Input.
	Change                  Change
	ProviderID, Token, Cost string
	// Polled counts a poll answer in the task.
	Polled bool
	// Charged marks the record as possibly charged.
	Charged bool
	// Ban is the ban the code announces (zero Until: none); it runs as an
	// effect when the rule has the Ban effect.
	Ban BanOrder
	// TimeoutShift pushes the task's poll timeout back (a ban must not
	// fail a task).
	TimeoutShift time.Duration
	// Effects run after the commit.
	Effects []Effect
}

// Has reports whether d carries effect x.
func (d Decision) Has(x Effect) bool {
	for _, e := range d.Effects {
		if e == x {
			return true
		}
	}
	return false
}

// BanOrder is an engine-wide stop of requests.
type BanOrder struct {
	// Code is the code that announced the ban.
	Code string
	// Until is when it ends; Length is how long it lasts.
	Until  time.Time
	Length time.Duration
	// Submits and Polls say which requests it stops.
	Submits, Polls bool
}

// ErrNoRule is returned by Decide when no row matches: the engine was asked
// something it has no rule for (a bug, never a provider's answer: every
// answer matches a catch-all row).
var ErrNoRule = fmt.Errorf("transitions: no decision rule matches")

// Decide returns the decision for in, from the decision table. It is pure:
// the same Input always gives the same Decision.
func Decide(in Input) (Decision, error) {
	entry, known := Lookup(in.Code)
	class := ClassUnknown
	if known {
		class = entry.Class
	}
	for _, r := range rules {
		if r.From != in.State || r.What != in.What {
			continue
		}
		if r.What == Answer && r.Class != "" && r.Class != class {
			continue
		}
		if !in.holds(r.If, entry) {
			continue
		}
		return in.decide(r, entry, known), nil
	}
	return Decision{}, fmt.Errorf("%w: %s on %s (code %q, class %s)", ErrNoRule, in.State, in.What, in.Code, class)
}

func (in Input) holds(g Guard, entry Entry) bool {
	switch g {
	case Always:
		return true
	case IfPastDeadline:
		return !in.Deadline.IsZero() && !in.Now.Before(in.Deadline)
	case IfInDoubt:
		return in.InDoubt
	case IfBreakerOpen:
		return in.BreakerOpen
	case IfBan:
		return entry.IsBan()
	case IfKeyWide:
		return entry.KeyWide
	case IfTimedOut:
		return in.timedOut()
	case IfRetriesLeft:
		return in.Retries < max(in.Limits.MaxRetries, 0)
	case IfRetriesSpent:
		return in.Retries >= max(in.Limits.MaxRetries, 0)
	case IfResubsLeft:
		return in.Resubmits < max(in.Limits.MaxResubmits, 0)
	case IfResubsSpent:
		return in.Resubmits >= max(in.Limits.MaxResubmits, 0)
	}
	return false
}

func (in Input) timedOut() bool {
	return !in.PollSince.IsZero() && in.Now.Sub(in.PollSince) >= in.Limits.PollTimeout
}

func (in Input) decide(r Rule, entry Entry, known bool) Decision {
	// A task that ends with a submit in doubt is marked possibly charged:
	// the record that ends it must not hide the intent before it.
	d := Decision{Rule: r, At: in.Now, Event: r.Event, Change: r.Change, Effects: r.Effects,
		Charged: in.Charged || r.Event == PossiblyCharged || r.Event == DeadlinePassed && in.InDoubt, Polled: in.Polled}
	switch r.Change {
	case StartPolling:
		d.ProviderID = in.ProviderID
	case TakeToken:
		d.Token, d.Cost = in.Token, in.Cost
	}
	switch r.Code {
	case NoCode:
	case AnswerCode, KeptCode:
		d.Code = in.Code
	default:
		d.Code = string(r.Code)
	}
	if known && entry.IsBan() && d.Has(Ban) {
		d.Ban = in.ban(entry)
	} else {
		d.Effects = without(d.Effects, Ban)
	}
	switch r.Wait {
	case NoWait:
	case Unchanged:
		d.KeepNext = true
	case Now:
		d.Next = in.Now
	case FirstPoll:
		first := in.Limits.FirstPollDelay
		if in.TokenMethod {
			first = in.Limits.FirstPollDelayToken
		}
		d.Next = in.Now.Add(first)
	case PollInterval:
		d.Next = in.Now.Add(in.Limits.PollInterval)
	case PollRetry:
		d.Next = in.Now.Add(max(in.Limits.PollInterval, in.RetryDelay(in.Code, 1)))
	case RetryDelay:
		d.Next = in.Now.Add(in.RetryDelay(in.Code, in.Retries+1))
	case BanEnd:
		d.Next = d.Ban.Until
		if in.State == states.Polling {
			// A ban must not fail the task: its poll timeout pauses too.
			d.TimeoutShift = d.Ban.Until.Sub(in.Now)
		}
	}
	if !in.Deadline.IsZero() && d.Next.After(in.Deadline) {
		// Due at the deadline, which then ends the task: a poll or a
		// submit after it would be spent on an answer no one wants.
		d.Next = in.Deadline
	}
	d.Detail = joinDetail(in.Detail, in.note(d, entry))
	return d
}

// ban is the ban entry announces, as of in.Now: its length from the
// policy's retry delay for the code, else the catalogue's.
func (in Input) ban(entry Entry) BanOrder {
	length := entry.Ban
	if d, ok := in.Limits.RetryDelays[entry.Code]; ok {
		length = d
	}
	return BanOrder{Code: entry.Code, Until: in.Now.Add(length), Length: length,
		Submits: entry.Where != ResPHP, Polls: entry.Where != InPHP}
}

// RetryDelay is the wait before retry attempt n (1-based) after code: the
// policy's or the catalogue's delay for the code, else exponential backoff
// with jitter, capped.
func (in Input) RetryDelay(code string, n int) time.Duration {
	if d, ok := in.Limits.RetryDelays[code]; ok {
		return d
	}
	entry, _ := Lookup(code)
	if entry.RetryDelay > 0 {
		return entry.RetryDelay
	}
	lo, hi := in.Limits.BackoffBase, in.Limits.BackoffMax
	if entry.BackoffMin > 0 {
		lo, hi = entry.BackoffMin, entry.BackoffMax
	}
	return Backoff(lo, hi, n, in.Jitter)
}

// Backoff returns lo·2^(n-1), capped at hi, with ±20 % jitter kept inside
// [lo, hi]. r is a uniform draw in [0, 1).
func Backoff(lo, hi time.Duration, n int, r float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = time.Duration(float64(d) * (0.8 + 0.4*r))
	return min(max(d, lo), hi)
}

// note is the history's detail for a decision.
func (in Input) note(d Decision, entry Entry) string {
	switch d.Event {
	case PossiblyCharged:
		return "a submit was being sent when the engine stopped; the provider may have charged it"
	case BreakerOpen:
		return "submits stopped by an account error; waiting for account-fixed"
	case RateLimited:
		return "engine-wide ban until " + d.Ban.Until.Format(time.RFC3339)
	case TransientError:
		if in.State == states.Submitting {
			return fmt.Sprintf("retry %d of %d in %s", in.Retries+1, max(in.Limits.MaxRetries, 0),
				d.Next.Sub(in.Now).Round(time.Millisecond))
		}
	case RetriesExhausted:
		return fmt.Sprintf("gave up after %d retries", in.Retries)
	case PermanentError, AccountError:
		if entry.Where != Engine {
			return entry.Meaning
		}
	case UnknownError:
		if in.State == states.Submitting {
			return "unexpected answer to in.php"
		}
		return "unknown answer from res.php"
	case PollTimeout:
		return fmt.Sprintf("no answer within %s", in.Limits.PollTimeout)
	case ResubmitNeeded:
		return fmt.Sprintf("resubmit %d of %d", in.Resubmits+1, max(in.Limits.MaxResubmits, 0))
	case ResubmitsExhausted:
		return fmt.Sprintf("gave up after %d resubmits", in.Resubmits)
	case ResubmitStarted:
		return "new task with the same parameters"
	case Cancelled:
		return "cancelled by the caller"
	case DeadlinePassed:
		note := "deadline " + in.Deadline.Format(time.RFC3339) + " passed"
		if in.InDoubt {
			note += "; a submit was being sent: the provider may have charged it"
		}
		return note
	case AccountFixed:
		return "account fixed"
	}
	return ""
}

func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func without(fx []Effect, x Effect) []Effect {
	for i, e := range fx {
		if e == x {
			out := append([]Effect(nil), fx[:i]...)
			return append(out, fx[i+1:]...)
		}
	}
	return fx
}
