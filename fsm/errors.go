package fsm

import (
	"errors"
	"fmt"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Sentinel errors. The typed errors below match them with errors.Is.
var (
	// ErrIllegal: the machine has no transition for the event from the
	// state. Returned as an *IllegalError.
	ErrIllegal = errors.New("fsm: illegal move")
	// ErrReplay: a history does not replay through the machine. Returned as
	// a *ReplayError.
	ErrReplay = errors.New("fsm: replay refused")
	// ErrInvalidState: a state that is not one of the seven was given where
	// a machine must start.
	ErrInvalidState = errors.New("fsm: invalid state")
)

// IllegalError is an event the machine refuses in its current state. The
// state is left as it was.
type IllegalError struct {
	// From is the state the event was fired in.
	From states.State
	// Event is the refused event.
	Event transitions.Event
	// Unknown reports that no edge of the table carries Event at all (a
	// typo or a record written by a newer program), as opposed to an event
	// that is merely not allowed from From.
	Unknown bool
}

// Error returns, for example, `fsm: illegal move: no transition from Done on "solved"`.
func (e *IllegalError) Error() string { return "fsm: illegal move: " + e.reason() }

// Is reports whether target is ErrIllegal.
func (e *IllegalError) Is(target error) bool { return target == ErrIllegal }

func (e *IllegalError) reason() string {
	s := fmt.Sprintf("no transition from %s on %q", stateName(e.From), string(e.Event))
	if e.Unknown {
		s += " (unknown event)"
	}
	return s
}

// ReplayError names the first record of a history that the machine refuses.
type ReplayError struct {
	// Seq is the refused record's sequence number (0 for an empty history).
	Seq uint64
	// Event, From and To are the refused record's fields, as stored.
	Event transitions.Event
	From  states.State
	To    states.State
	// Reason says why the record is refused.
	Reason string
	// Err is the machine's own refusal (an *IllegalError) when the event was
	// illegal, else nil.
	Err error
}

// Error returns, for example,
// `fsm: replay refused at seq 4 (Done --solved--> Done): no transition from Done on "solved"`.
func (e *ReplayError) Error() string {
	if e.Seq == 0 && e.Event == "" && e.From == "" && e.To == "" {
		return "fsm: replay refused: " + e.Reason
	}
	return fmt.Sprintf("fsm: replay refused at seq %d (%s --%s--> %s): %s",
		e.Seq, stateName(e.From), string(e.Event), stateName(e.To), e.Reason)
}

// Is reports whether target is ErrReplay.
func (e *ReplayError) Is(target error) bool { return target == ErrReplay }

// Unwrap returns the machine's refusal, if any, so that errors.Is(err,
// ErrIllegal) holds for a record whose event is illegal.
func (e *ReplayError) Unwrap() error { return e.Err }

// stateName renders a state for messages; the empty state (before a task
// exists) is drawn as diagrams draw it, [*].
func stateName(s states.State) string {
	if s == "" {
		return "[*]"
	}
	return string(s)
}
