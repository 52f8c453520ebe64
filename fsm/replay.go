package fsm

import (
	"errors"
	"fmt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Replay re-derives a task's state from its history through the machine
// and returns the state the last record reaches.
//
// The history must be non-empty. Its first record must be the creation:
// Seq 1, event transitions.Created, From "" and To transitions.Initial.
// Every later record must have the next Seq, start From the state the
// machine is in, carry an Event the machine allows from there, and name as
// To the state the machine reaches. An annotation (transitions.Annotations)
// must leave the state as it was.
//
// The first record that breaks a rule is reported as a *ReplayError
// (errors.Is(err, ErrReplay)), and the returned state is then "". When the
// record's event is illegal the error also matches ErrIllegal.
func Replay(history []persist.Record) (states.State, error) {
	if len(history) == 0 {
		return "", &ReplayError{Reason: "empty history"}
	}
	first := history[0]
	if reason := checkFirst(first); reason != "" {
		return "", refuse(first, reason, nil)
	}
	cur, prev := first.To, first.Seq
	for _, rec := range history[1:] {
		if rec.Seq != prev+1 {
			return "", refuse(rec, fmt.Sprintf("seq %d follows seq %d (want %d)", rec.Seq, prev, prev+1), nil)
		}
		if rec.From != cur {
			return "", refuse(rec, fmt.Sprintf("record starts from %s but the machine is in %s", stateName(rec.From), cur), nil)
		}
		if transitions.IsAnnotation(rec.Event) {
			// A note, not a move (a report on the answer).
			if rec.To != cur {
				return "", refuse(rec, fmt.Sprintf("annotation %q leaves the task in %s, not %s", string(rec.Event), cur, stateName(rec.To)), nil)
			}
			prev = rec.Seq
			continue
		}
		to, err := Step(cur, rec.Event)
		if err != nil {
			var illegal *IllegalError
			if errors.As(err, &illegal) {
				return "", refuse(rec, illegal.reason(), err)
			}
			return "", refuse(rec, err.Error(), err)
		}
		if to != rec.To {
			return "", refuse(rec, fmt.Sprintf("the machine reaches %s, not %s", to, stateName(rec.To)), nil)
		}
		cur, prev = to, rec.Seq
	}
	return cur, nil
}

// checkFirst returns why rec cannot open a history, or "".
func checkFirst(rec persist.Record) string {
	switch {
	case rec.Seq != 1:
		return fmt.Sprintf("first record has seq %d, want 1", rec.Seq)
	case rec.Event != transitions.Created:
		return fmt.Sprintf("first record is %q, want %q", string(rec.Event), string(transitions.Created))
	case rec.From != "":
		return fmt.Sprintf("first record starts from %s, want [*]", rec.From)
	case rec.To != transitions.Initial:
		return fmt.Sprintf("first record enters %s, want %s", stateName(rec.To), transitions.Initial)
	}
	return ""
}

func refuse(rec persist.Record, reason string, err error) *ReplayError {
	return &ReplayError{Seq: rec.Seq, Event: rec.Event, From: rec.From, To: rec.To, Reason: reason, Err: err}
}
