// Package fsm is captchafsm's state machine: the only importer of
// github.com/looplab/fsm. It builds its machines from transitions.Table, the
// single source of truth, so an illegal move is an error and never a silent
// change of state.
//
// # Basics
//
// The engine moves a task with Step, which borrows a looplab machine from a
// pool, sets it to the task's state and fires the event:
//
//	to, err := fsm.Step(states.Polling, transitions.Solved) // Done, nil
//	_, err = fsm.Step(states.Done, transitions.Solved)      // *IllegalError
//
// Apply builds a task's next version and the record of its move from a
// decision of the table (transitions.Decide), checked through Step: the
// engine commits what Apply returns.
//
// Replay re-derives a task's state from its stored history (persist.Record)
// and names the first record the machine refuses; the CLI's replay command
// uses it to prove that a database tells a consistent story.
//
// Mermaid, MermaidHighlight and Dot draw the same table, for the generated
// docs and the CLI's diagram command.
//
// # Errors
//
// An event not allowed from the current state is an *IllegalError
// (errors.Is(err, ErrIllegal)); a history that does not replay is a
// *ReplayError (errors.Is(err, ErrReplay)).
//
// # Caveats
//
// looplab reports a self-transition (Polling on not_ready, Submitting on
// submit_sending) as NoTransitionError; this package treats it as the legal
// move it is. The machines carry no callbacks: looplab deadlocks when a
// callback fires an event, and the engine, not the machine, performs the
// effects of a move.
package fsm
