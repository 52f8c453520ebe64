// Package persisttest is the conformance suite of persist.Store: every
// behaviour the engine relies on, as subtests any implementation must pass
// (create and read back, refs, listing by state, counts, histories,
// conflicts, exact times, pruning, concurrent transitions on many tasks and
// on one, cancellation, closing; streaming scans across pages, with
// cursors, in reverse and while tasks move; the due-time index through
// every kind of Apply; LastSubmit; the Intent flag).
//
// A store's own tests call Run with a function that opens a new, empty
// store for each subtest.
package persisttest
