// Package boltstore is the embedded persist.Store: one bbolt file. It is
// the only package of captchafsm that imports bbolt.
//
// # Basics
//
// Open creates the file (mode 0600) or opens it, takes its lock (a second
// process fails with persist.ErrLocked), and checks that it is a captchafsm
// database of a schema this program reads. Every transition is one Apply:
// the history record and the task's new fields are written in one bbolt
// transaction, and Apply returns once that commit is on disk.
//
// # Layout
//
// The file holds the buckets
//
//	meta       magic "captchafsm", the schema version (4), LastSubmit
//	history    id 0x00 seq (8 bytes, big-endian) → record (binary), and
//	           right after a task's records, id 0x01 → task (binary,
//	           without params)
//	params     id → params (JSON), written once by Create, never by Apply
//	refs       ref → id, so refs are unique
//	by_state   state 0x00 id → empty: the index List, Scan and Count read
//	due        DueAt (12 bytes) id → empty: the active tasks, the index
//	           Due reads; DueAt is the task's NextAt, or up to
//	           persist.DueSlack before it (a task flag says so, and when)
//
// A transition writes a record and rewrites its task: keys that follow
// each other, so both land in one leaf of the tree (in schema 2 the task
// lived in a bucket of its own, one more leaf and branch to write per
// commit). Its due entry moves only when its NextAt moves earlier or more
// than persist.DueSlack later than where the index holds it (schema 4):
// a task polled every five seconds moves it about once a minute, where
// every poll moved it before, in two more leaves and their branch. Scan
// steps over each task's records (or seeks past a long history) to read
// the tasks alone.
//
// Every stored value starts with an encoding version byte and a CRC-32C of
// what follows, so damage inside a value is reported, not read. Tasks and
// records are binary (encoding 2): a task decodes with two allocations, so
// a scan of a million tasks costs a fraction of a second of CPU. A task
// with options of its own (persist.TaskOptions) is written in encoding 3,
// encoding 2 followed by them, and one with labels in encoding 4,
// encoding 3 followed by its labels; a program that knows fewer encodings
// refuses a value of a newer one as newer (persist.ErrNewerSchema), never
// as damage. Values of a file written by schema 1 (JSON, encoding 1) are
// still read. Opening a
// file of schema 1 or 2 migrates it (migrate.go), resumably, in
// transactions of bounded size; a file of schema 3 only has its number
// raised.
//
// # Group commit
//
// Each caller of Apply checks its transition against the committed task
// and encodes what it will write. A lone caller (no other request queued
// or on its way, no commit running, no goroutine waiting to run) then
// commits it on its own goroutine; otherwise it queues it, and a single
// goroutine takes every queued Apply, checks that each task is still the
// one its caller read, and commits them all in one transaction, so a
// thousand concurrent transitions cost a few fsyncs, not a thousand. Before
// it takes a batch the goroutine lets the callers on their way catch up:
// it waits while a request is being prepared or a burst is arriving, and
// yields while other goroutines are runnable (the runtime counts them for
// it), but with nothing else to run it commits at once: a lone caller does
// not wait for company (bbolt's own Batch waits up to 10 ms for it). The
// loop remembers the tasks it wrote last, until they end, so the next
// transition of a task in flight needs no read, and no check when the
// stored value is the one it wrote. The requests of a batch are written
// bucket by bucket in key order. One transition writes its record and task
// and, when they change, its by-state and due index entries and
// LastSubmit.
//
// # Caveats
//
// Prune frees pages inside the file; only Compact gives them back to the
// file system. A damaged file is refused with persist.ErrNotOurs; damage
// found later, inside a page, fails the call that met it, with the same
// sentinel, rather than panicking.
package boltstore
