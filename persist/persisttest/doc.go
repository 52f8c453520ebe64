// Package persisttest is the conformance suite of persist.Store: every
// behaviour the engine relies on, as subtests any implementation must pass
// (create and read back, refs, listing by state, counts, histories,
// conflicts, exact times, pruning, concurrent transitions on many tasks and
// on one, cancellation, closing).
//
// A store's own tests call Run with a function that opens a new, empty
// store for each subtest.
package persisttest
