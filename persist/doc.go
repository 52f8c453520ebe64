// Package persist defines how captchafsm keeps its tasks: the Task record,
// the append-only history Record, and the Store interface the engine sees.
//
// One transition is one Store.Apply: the history record and the task's new
// state are committed together, so the two never disagree, and the engine
// acts on a move only after Apply returned. The embedded default is
// persist/boltstore (a bbolt file); persist/persisttest is the conformance
// suite any other Store (a distributed one, later) must pass.
//
// Reads that grow with the store stream: Scan and ScanHistory page through
// tasks and records in short reads of their own, and Due pages through the
// active tasks by next-action time from an index the store keeps in every
// transition's transaction, so that an engine starts with the tasks due
// soonest without loading the rest (LastSubmit and Task.Intent spare it
// reading histories).
//
// A Store never receives the API key.
package persist
