package states

import (
	"fmt"
	"strings"
)

// State is the state of one solve. Its string form is the name fixed by the
// product contract and is what the store, the CLI and the JSON outputs use.
type State string

// The seven states of a solve.
const (
	// Submitting: the task is about to be sent to in.php (or was being sent
	// when the process stopped).
	Submitting State = "Submitting"
	// Backoff: in.php answered with a transient error; the task waits for its
	// next-action time before it is sent again.
	Backoff State = "Backoff"
	// Polling: in.php accepted the task; res.php is asked for the answer until
	// it is ready, fails, or the poll timeout passes.
	Polling State = "Polling"
	// Resubmitting: res.php said the task cannot be solved as it was (for
	// example ERROR_CAPTCHA_UNSOLVABLE); a new task with the same parameters
	// will be sent.
	Resubmitting State = "Resubmitting"
	// Done: the answer (token) was received. Terminal.
	Done State = "Done"
	// Failed: the task ended without an answer; its history says why. Terminal.
	Failed State = "Failed"
	// NeedsAccountFix: the account cannot take work (no balance, IP not
	// allowed...). Only a person's "account fixed" moves a task out of it.
	NeedsAccountFix State = "NeedsAccountFix"
)

// All lists every state in the order of a solve's life.
func All() []State {
	return []State{Submitting, Backoff, Polling, Resubmitting, Done, Failed, NeedsAccountFix}
}

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s == Done || s == Failed }

// Settled reports whether an engine has nothing left to do for a task in s
// on its own: it ended (Done, Failed) or it waits for the account to be
// fixed (NeedsAccountFix). Wait returns, Drain counts it as finished.
func (s State) Settled() bool { return s.Terminal() || s == NeedsAccountFix }

// Active reports whether an engine drives a task in s: Submitting, Backoff,
// Polling or Resubmitting.
func (s State) Active() bool { return s.Valid() && !s.Settled() }

// ActiveStates lists the states an engine drives, in the order of a
// solve's life.
func ActiveStates() []State { return []State{Submitting, Backoff, Polling, Resubmitting} }

// Valid reports whether s is one of the seven states.
func (s State) Valid() bool {
	for _, v := range All() {
		if v == s {
			return true
		}
	}
	return false
}

// String returns the state's contract name.
func (s State) String() string { return string(s) }

// Parse returns the state named text. The match ignores case and the
// separators '-', '_' and ' ', so "needs-account-fix" names NeedsAccountFix.
func Parse(text string) (State, error) {
	// The stored and printed form: no allocation (every record a store
	// decodes comes this way).
	if s := State(text); s.Valid() {
		return s, nil
	}
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
	}
	want := norm(strings.TrimSpace(text))
	for _, s := range All() {
		if norm(string(s)) == want {
			return s, nil
		}
	}
	names := make([]string, 0, 7)
	for _, s := range All() {
		names = append(names, string(s))
	}
	return "", fmt.Errorf("states: unknown state %q (want one of %s)", text, strings.Join(names, ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it refuses unknown names.
// The empty string decodes to the empty State (no state, as before creation).
func (s *State) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = ""
		return nil
	}
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
