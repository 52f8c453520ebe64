package fsm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	lfsm "github.com/looplab/fsm"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// definition is the looplab form of transitions.Table, checked once.
type definition struct {
	events lfsm.Events
	// known holds every event of the table, to tell an unknown event from
	// one that is only illegal in the current state.
	known map[transitions.Event]bool
}

// loadDefinition converts transitions.Table into looplab events. It refuses
// a table looplab would silently misread: looplab keys transitions by
// (event, source), so a second edge with the same key would overwrite the
// first instead of failing.
var loadDefinition = sync.OnceValues(func() (*definition, error) {
	return buildDefinition(transitions.Table())
})

func buildDefinition(table []transitions.Edge) (*definition, error) {
	if len(table) == 0 {
		return nil, errors.New("fsm: transition table is empty")
	}
	type key struct {
		from states.State
		ev   transitions.Event
	}
	seen := make(map[key]bool, len(table))
	d := &definition{known: make(map[transitions.Event]bool)}
	for i, e := range table {
		switch {
		case !e.From.Valid():
			return nil, fmt.Errorf("fsm: transition table edge %d: from %q: %w", i, string(e.From), ErrInvalidState)
		case !e.To.Valid():
			return nil, fmt.Errorf("fsm: transition table edge %d: to %q: %w", i, string(e.To), ErrInvalidState)
		case e.Event == "" || e.Event == transitions.Created:
			return nil, fmt.Errorf("fsm: transition table edge %d: event %q cannot label an edge", i, string(e.Event))
		case e.From.Terminal():
			return nil, fmt.Errorf("fsm: transition table edge %d: leaves terminal state %s", i, e.From)
		case seen[key{e.From, e.Event}]:
			return nil, fmt.Errorf("fsm: transition table edge %d: second edge from %s on %q", i, e.From, string(e.Event))
		}
		seen[key{e.From, e.Event}] = true
		d.known[e.Event] = true
		// One EventDesc per edge: looplab gives an event one destination
		// for all its sources, and ours differ by source (transient_error
		// leads to Backoff from Submitting but stays in Polling).
		d.events = append(d.events, lfsm.EventDesc{
			Name: string(e.Event), Src: []string{string(e.From)}, Dst: string(e.To),
		})
	}
	return d, nil
}

// newLooplab returns a looplab machine in state initial. It has no
// callbacks: a callback that fires an event deadlocks looplab, and the
// engine, not the machine, performs the effects of a move.
func (d *definition) newLooplab(initial states.State) *lfsm.FSM {
	return lfsm.NewFSM(string(initial), d.events, nil)
}

// fire runs ev on f and translates looplab's outcome. f must be used by the
// caller alone. ok is false when f can no longer be trusted (an internal
// looplab error), so that a pool drops it.
func (d *definition) fire(ctx context.Context, f *lfsm.FSM, from states.State, ev transitions.Event) (to states.State, ok bool, err error) {
	// looplab returns its errors unwrapped; a type switch keeps the hot
	// path free of errors.As's reflection.
	switch e := f.Event(ctx, string(ev)).(type) {
	case nil:
		return states.State(f.Current()), true, nil
	case lfsm.NoTransitionError:
		if e.Err == nil {
			// A self-transition (Polling on not_ready): looplab reports
			// it as "no transition", yet it is a legal move that keeps
			// the state.
			return states.State(f.Current()), true, nil
		}
		return from, true, fmt.Errorf("fsm: fire %q from %s: %w", string(ev), stateName(from), e)
	case lfsm.InvalidEventError:
		return from, true, &IllegalError{From: from, Event: ev, Unknown: !d.known[ev]}
	case lfsm.UnknownEventError:
		return from, true, &IllegalError{From: from, Event: ev, Unknown: true}
	default:
		return from, false, fmt.Errorf("fsm: fire %q from %s: %w", string(ev), stateName(from), e)
	}
}

// pool holds looplab machines for Step, so that thousands of tasks share a
// handful of machines instead of building one per task and keeping it.
var pool = sync.Pool{New: func() any {
	d, err := loadDefinition()
	if err != nil {
		return nil
	}
	return d.newLooplab(transitions.Initial)
}}

// Step returns the state that ev leads to from from, as the machine
// decides it. It is the engine's entry point for every move of every task:
// it borrows a looplab machine from a pool, sets it to from and fires ev,
// so nothing is allocated per task. A self-transition returns from; an
// illegal move returns from and an *IllegalError (errors.Is(err,
// ErrIllegal)). Step is safe for concurrent use.
func Step(from states.State, ev transitions.Event) (states.State, error) {
	d, err := loadDefinition()
	if err != nil {
		return from, err
	}
	f, _ := pool.Get().(*lfsm.FSM)
	if f == nil {
		f = d.newLooplab(transitions.Initial)
	}
	f.SetState(string(from))
	to, ok, err := d.fire(context.Background(), f, from, ev)
	if ok {
		pool.Put(f)
	}
	return to, err
}
