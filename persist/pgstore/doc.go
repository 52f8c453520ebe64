// Package pgstore is a persist.Store on PostgreSQL that a fleet of engines
// (bot processes on many hosts) shares: besides the Store it is a
// persist.Leaser, so that no two engines drive one task at once, and a
// persist.Fleet, so that the account breaker, rate bans and the submit
// rate are the fleet's. It is the only package of captchafsm that imports
// pgx.
//
// # Basics
//
// Open connects with a pool and makes sure the schema (Options.Schema,
// "captchafsm" by default) holds this program's tables: it creates them in
// an empty schema, runs the migrations an older schema lacks (versioned in
// the table schema_version, one opener at a time under an advisory lock),
// and refuses a newer schema (persist.ErrNewerSchema) or a schema that
// holds another program's tables (persist.ErrNotOurs). Readers (list,
// history, replay) need no lock: they can run beside the engines.
//
// Every transition is one Apply, one SQL statement: the task's row is
// updated only if it is in the record's From state at the caller's Seq
// (else persist.ErrConflict), and the history record is inserted with it,
// so the two never disagree. Apply returns once the commit is durable.
//
// # Layout
//
//	tasks           one row per task; ref unique when set; owner and lease_until
//	params          id → params (json), written once by Create, never by Apply
//	history         (task_id, seq) → one record
//	fleet           one row: breaker, submit and poll pauses, next submit slot
//	schema_version  one row per applied migration
//
// Times are kept to the nanosecond (a timestamptz column and a smallint
// of nanoseconds beside it), as boltstore keeps them. Free text that
// PostgreSQL cannot hold (NUL, invalid UTF-8) is stored with U+FFFD in
// its place; ids and refs holding it are refused.
//
// # Leases
//
// Claim leases due tasks with SELECT … FOR UPDATE SKIP LOCKED, so engines
// that claim together take different tasks without waiting on each other;
// a lease is an owner and an expiry measured by the server's clock. An
// engine renews its leases while it works; a task whose owner died is
// claimed by another engine once its lease expires and resumed from its
// persisted state. Apply refuses a step of a task leased to another owner
// than the task's Owner, so an engine that lost a lease cannot commit on
// top of the engine that took it over.
//
// # Fleet
//
// The breaker and pauses are a row that engines read (Conditions) every
// second or so. ReserveSubmit moves the fleet's next submit slot on by
// 1/rate in one UPDATE, so the engines together stay under the provider's
// rate. Times crossing between an engine and the row are converted through
// durations, so clock skew between hosts does not matter.
//
// # Caveats
//
// The database must exist; Open creates only the schema. Prune deletes
// rows; PostgreSQL's autovacuum reclaims the space (there is no Compact).
package pgstore
