package persist

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Task is one solve as the store keeps it. Params are written once, when the
// task is created; every transition rewrites the rest.
type Task struct {
	// ID is a UUIDv7 (text form), so ids sort by creation time.
	ID string `json:"id"`
	// Ref is the caller's own name for the task (optional, unique when set).
	Ref string `json:"ref,omitempty"`
	// Method is the provider's method (post, base64, userrecaptcha, ...).
	Method string `json:"method"`
	// Params are the method's parameters, never the API key. Only Get and
	// GetByRef fill them; List leaves them nil.
	Params map[string]string `json:"params,omitempty"`
	// Options are the task's own settings, written once, when the task is
	// created, like Params (but returned by every read).
	Options TaskOptions `json:"options,omitzero"`

	State states.State `json:"state"`
	// Code is the last provider code (or reserved code such as POLL_TIMEOUT)
	// that moved the task; empty after an OK answer.
	Code string `json:"code,omitempty"`

	Submits   int `json:"submits"`   // in.php requests sent (or possibly sent)
	Retries   int `json:"retries"`   // transient errors counted against max_retries
	Resubmits int `json:"resubmits"` // new provider tasks after a resubmit code
	Polls     int `json:"polls"`     // res.php answers received for this task

	// ProviderID is the provider's id of the current submit, committed the
	// moment in.php accepts it.
	ProviderID string `json:"provider_id,omitempty"`
	// NextAt is the absolute time of the task's next action (a submit after
	// a backoff, the next poll), so a restart honours a wait under way.
	NextAt time.Time `json:"next_at,omitzero"`
	// PollSince is when the current provider task was accepted; the poll
	// timeout counts from it.
	PollSince time.Time `json:"poll_since,omitzero"`

	Token string `json:"token,omitempty"`
	// Cost is the provider's price for the answer, as it reported it.
	Cost string `json:"cost,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Owner and LeaseUntil name the engine driving the task and until when,
	// in stores that several engines share (see Leaser). Create takes them
	// as given; other stores keep them as data.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Seq is the sequence number of the task's last history record. The
	// store uses it to refuse a transition computed from a stale copy.
	Seq uint64 `json:"seq"`
	// Intent is set by the store, never by the caller: it is true when the
	// task's last history record leaves a submit in doubt
	// (transitions.InDoubt: a transitions.SubmitSending), that is, when an
	// in.php request may have left without its answer being recorded.
	// Apply sets it from the record it commits (and ignores the value it
	// is given); Create sets it false.
	Intent bool `json:"intent,omitempty"`
	// DueAt is the time the store's due index holds an active task under
	// (see Store.Due), set by the store in the tasks Due returns (other
	// reads may set it too; Create and Apply ignore the value they are
	// given). It is never later than NextAt and at most DueSlack earlier.
	DueAt time.Time `json:"-"`
}

// DueSlack bounds how far a task's place in the due index (Task.DueAt) may
// lag behind its NextAt. A store may leave a task where it is while its
// NextAt moves later by no more than DueSlack, so that a task polled every
// few seconds rewrites its index entry about once a minute instead of at
// every poll; a NextAt that moves earlier, or further, moves the entry.
const DueSlack = time.Minute

// Clone returns a deep copy of t.
//
// Options.Labels is shared, not copied: labels never change once the task
// is created, so no one may write to the map.
func (t *Task) Clone() *Task {
	c := *t
	if t.Params != nil {
		c.Params = make(map[string]string, len(t.Params))
		for k, v := range t.Params {
			c.Params[k] = v
		}
	}
	return &c
}

// TaskOptions are a task's own settings, given when it is created. Their
// zero value means the engine's: no deadline, priority 0, the policy's
// limits. Every store keeps them as created: Apply never changes them.
type TaskOptions struct {
	// Deadline, when set, is when the task ends Failed with code
	// DEADLINE_EXCEEDED if it has no answer by then.
	Deadline time.Time `json:"deadline,omitzero"`
	// Priority orders the tasks due to be submitted: higher first. Any
	// value that fits in 32 bits.
	Priority int `json:"priority,omitempty"`
	// MaxRetries and MaxResubmits replace the policy's max_retries and
	// max_resubmits for this task: 0 keeps the policy's, a negative value
	// allows none.
	MaxRetries   int `json:"max_retries,omitempty"`
	MaxResubmits int `json:"max_resubmits,omitempty"`
	// Labels are the caller's own data about the task (a callback URL, a
	// key of its own), kept with it and never sent to the provider: at most
	// MaxLabels, each key 1–MaxLabelKeyLen bytes, all of them together at
	// most MaxLabelsLen bytes of valid UTF-8.
	Labels map[string]string `json:"labels,omitempty"`
}

// Label limits: what ValidateOptions allows in TaskOptions.Labels.
const (
	MaxLabels      = 16
	MaxLabelKeyLen = 64
	MaxLabelsLen   = 4096
)

// IsZero reports whether o holds no setting of its own.
func (o TaskOptions) IsZero() bool {
	return o.Deadline.IsZero() && o.Priority == 0 && o.MaxRetries == 0 && o.MaxResubmits == 0 && len(o.Labels) == 0
}

// Label returns the value of the label k ("" when there is none).
func (o TaskOptions) Label(k string) string { return o.Labels[k] }

// ErrInvalidOptions: task options no store can keep as given.
// ValidateOptions's errors (*OptionError) match it.
var ErrInvalidOptions = errors.New("persist: invalid task options")

// OptionError is an option that no store can keep as given. It matches
// ErrInvalidOptions.
type OptionError struct {
	// Field names the option as JSON spells it ("priority", "labels").
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *OptionError) Error() string {
	return e.Field + ": " + e.Problem + ": " + ErrInvalidOptions.Error()
}

// Is matches ErrInvalidOptions.
func (e *OptionError) Is(target error) bool { return target == ErrInvalidOptions }

// ValidateOptions reports why o cannot be stored (an *OptionError), or
// nil: every store keeps the integers in 32 bits, and labels within the
// label limits.
func ValidateOptions(o TaskOptions) error {
	for _, f := range []struct {
		name string
		v    int
	}{{"priority", o.Priority}, {"max_retries", o.MaxRetries}, {"max_resubmits", o.MaxResubmits}} {
		if f.v < math.MinInt32 || f.v > math.MaxInt32 {
			return &OptionError{f.name, fmt.Sprintf("%d does not fit in 32 bits", f.v)}
		}
	}
	return validateLabels(o.Labels)
}

// validateLabels checks labels against the label limits.
func validateLabels(labels map[string]string) error {
	bad := func(format string, args ...any) error {
		return &OptionError{"labels", fmt.Sprintf(format, args...)}
	}
	if len(labels) > MaxLabels {
		return bad("%d labels, at most %d", len(labels), MaxLabels)
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		switch {
		case k == "" || len(k) > MaxLabelKeyLen:
			return bad("key %q: 1 to %d bytes", k, MaxLabelKeyLen)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return bad("%q: not valid UTF-8", k)
		case strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0):
			return bad("%q: holds a NUL byte", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxLabelsLen {
		return bad("%d bytes, at most %d", size, MaxLabelsLen)
	}
	return nil
}

// Record is one entry of a task's append-only history.
type Record struct {
	Seq   uint64            `json:"seq"`
	At    time.Time         `json:"at"`
	From  states.State      `json:"from,omitempty"`
	Event transitions.Event `json:"event"`
	To    states.State      `json:"to"`
	// Code is the provider's (or a reserved) code that caused the move.
	Code string `json:"code,omitempty"`
	// Detail is a short human note (never the API key).
	Detail string `json:"detail,omitempty"`
	// ProviderID is the provider task id the move concerns.
	ProviderID string `json:"provider_id,omitempty"`
	// PossiblyCharged marks a submit whose request may have reached the
	// provider without its answer being recorded.
	PossiblyCharged bool `json:"possibly_charged,omitempty"`
}

// ListOptions filters List and Scan.
type ListOptions struct {
	// States keeps tasks in these states only; empty means all.
	States []states.State
	// Limit caps the number of tasks returned; 0 means no cap.
	Limit int
	// After, when not empty, keeps only the tasks whose id sorts after it
	// (before it, with Reverse): pass the last id of one page to read the
	// next. It need not be the id of a stored task.
	After string
	// Reverse lists in descending id order: newest first.
	Reverse bool
}

// DueCursor is a position in the due index's order of active tasks: a
// task's (DueAt, ID). Times compare as instants (time.Time.Compare), to
// the nanosecond and whatever their zone, ids as bytes; the zero time
// sorts first.
type DueCursor struct {
	At time.Time
	ID string
}

// DueOptions pages through the active tasks (states.State.Active:
// Submitting, Backoff, Polling, Resubmitting) by next-action time.
type DueOptions struct {
	// After: the zero cursor starts from the first task; otherwise only
	// tasks strictly after (After.At, After.ID) in the order are returned.
	// Pass the last task's (DueAt, ID) to read the next page.
	After DueCursor
	// Until, when not zero, leaves out the tasks whose DueAt is after it
	// (a DueAt equal to Until is returned). Every task due by Until
	// (NextAt ≤ Until) is returned, and some due up to DueSlack later.
	Until time.Time
	// Limit caps the number of tasks returned; 0 means no cap.
	Limit int
}

// Store keeps tasks and their histories. Every method is safe for
// concurrent use. A Store never receives the API key.
//
// Implementations: persist/boltstore (embedded, the default). The
// conformance suite in persist/persisttest holds every behaviour the engine
// relies on.
type Store interface {
	// Create stores new tasks, each with its first history record (event
	// Created, to Submitting), in one transaction: all or none. A task's ID
	// must be set (at most 1,024 bytes, no 0x00 byte) and its State empty
	// or Submitting; Create sets Seq to 1, Intent to false and zero
	// Created/Updated to now. The tasks join the due index under their
	// NextAt as given (zero: due at once). Options are stored as given;
	// options ValidateOptions refuses fail, wrapping ErrInvalidOptions.
	// A Ref already in the store fails with ErrDuplicateRef, an ID with
	// ErrDuplicateID.
	Create(ctx context.Context, tasks ...*Task) error

	// Apply commits one transition: it appends rec to the task's history and
	// replaces the task's mutable fields with t's (Params, Ref, Method,
	// Options and Created are kept as created), in one transaction. t.State must equal
	// rec.To. The stored task must be in rec.From with Seq equal to t.Seq,
	// else ErrConflict. On success rec.Seq and t.Seq are set to the new
	// record's sequence and t.Intent to transitions.InDoubt(rec.Event).
	// The same transaction keeps the due index (see Due) and LastSubmit.
	// Apply returns only once the commit is durable; concurrent callers
	// share commits.
	Apply(ctx context.Context, t *Task, rec *Record) error

	// Get returns the task with its Params, or ErrNotFound.
	Get(ctx context.Context, id string) (*Task, error)
	// GetByRef returns the task whose Ref is ref, or ErrNotFound.
	GetByRef(ctx context.Context, ref string) (*Task, error)
	// List returns tasks (without Params) in id order, that is creation
	// order (descending with opts.Reverse), all in memory: for small
	// results. Scan reads any number.
	List(ctx context.Context, opts ListOptions) ([]*Task, error)
	// Scan calls fn with each task (without Params) that opts selects, in
	// List's order, and stops at the first error fn returns, which Scan
	// returns as it is. It reads in pages of bounded size, each in a short
	// read of its own, and calls fn between reads, never inside one: memory
	// stays flat whatever the store holds, writers are not held up by a
	// slow fn, and fn may call the store. Each task is passed at most once,
	// in strictly increasing (decreasing, with Reverse) id order. Pages are
	// not one snapshot: a task created, moved or deleted during the scan
	// may be seen as it was before or after (and, if created or deleted,
	// not at all); a task that moves between two states both selected by
	// opts.States is still passed at most once. fn owns the tasks it gets.
	Scan(ctx context.Context, opts ListOptions, fn func(*Task) error) error
	// Due returns up to opts.Limit active tasks (Submitting, Backoff,
	// Polling, Resubmitting: states.State.Active), without Params, with
	// DueAt set, in (DueAt, ID) order: the earliest next action first
	// (to within DueSlack), a zero DueAt (due at once) first of all, ids
	// breaking ties. It reads an index that every Create and Apply keeps
	// in the same transaction as the task, so a task is returned exactly
	// when its committed state is active: a task leaves the index when it
	// settles (terminal or NeedsAccountFix) and comes back when it is
	// active again. Create puts a task under its NextAt; Apply keeps its
	// place while the new NextAt is no earlier and at most DueSlack later,
	// and moves it to the new NextAt otherwise (a store may always move
	// it). One call is one consistent read; tasks returned are the
	// store's copies. Leases (see Leaser) are not considered: an engine
	// sharing a store with others claims its tasks instead.
	Due(ctx context.Context, opts DueOptions) ([]*Task, error)
	// LastSubmit returns the latest At of the committed records whose
	// event is transitions.SubmitSending (the intent to send in.php),
	// zero when there is none. The store keeps it in the transaction of
	// each such Apply, so an engine that restarts can hold its first
	// submit until the provider's rate window after that moment has
	// passed without reading every task. It is never moved back (Prune
	// keeps it); a file migrated from an older schema starts from its
	// latest task update, a bound that is never earlier than the last
	// submit.
	LastSubmit(ctx context.Context) (time.Time, error)
	// Count returns the number of tasks per state; states without tasks
	// may be absent.
	Count(ctx context.Context) (map[states.State]int, error)
	// History returns the task's records in sequence order, or ErrNotFound.
	History(ctx context.Context, id string) ([]Record, error)
	// ScanHistory calls fn with each of the task's records in sequence
	// order, reading in pages as Scan does, and stops at the first error
	// fn returns, which it returns as it is. A task without records (no
	// task) fails with ErrNotFound before fn is called. Records committed
	// during the scan may or may not be passed; those passed are
	// contiguous from seq 1.
	ScanHistory(ctx context.Context, id string, fn func(Record) error) error

	// Prune deletes terminal tasks last updated before cutoff, with their
	// histories, and returns how many it deleted.
	Prune(ctx context.Context, cutoff time.Time) (int, error)
	// Close releases the store; a second Close returns ErrClosed.
	Close() error
}

// Compacter is implemented by stores that can reclaim the space that Prune
// frees.
type Compacter interface {
	Compact(ctx context.Context) error
}

// Space is the room a store takes, in bytes.
type Space struct {
	// Used is what the store's data (tasks, histories, indexes and the
	// store's own structures) occupies.
	Used int64
	// Free is room the store holds that no data uses: in a bbolt file,
	// the pages that Prune and every commit's copy-on-write freed, which
	// later commits reuse and Compact gives back.
	Free int64
	// File is the apparent size of a store's file (0 when it has none):
	// bbolt grows its file ahead of its data, and that tail is sparse.
	File int64
	// Disk is what the file occupies on the disk (its allocated blocks),
	// or File where the system does not say.
	Disk int64
}

// Sizer is implemented by stores that can tell how much room they take.
type Sizer interface {
	Space(ctx context.Context) (Space, error)
}

// Sentinel errors. Implementations wrap them with detail; match with errors.Is.
var (
	// ErrNotFound: no task has the id or ref.
	ErrNotFound = errors.New("persist: task not found")
	// ErrDuplicateRef: a task with this ref exists already.
	ErrDuplicateRef = errors.New("persist: duplicate ref")
	// ErrDuplicateID: a task with this id exists already.
	ErrDuplicateID = errors.New("persist: duplicate id")
	// ErrConflict: the stored task is not in the state (or at the sequence)
	// the transition was computed from.
	ErrConflict = errors.New("persist: transition conflicts with stored task")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("persist: store closed")
	// ErrLocked: another process holds the database.
	ErrLocked = errors.New("persist: database in use by another process")
	// ErrNotOurs: the file is not a captchafsm database (or is corrupt).
	ErrNotOurs = errors.New("persist: not a captchafsm database")
	// ErrNewerSchema: the database was written by a newer captchafsm.
	ErrNewerSchema = errors.New("persist: database schema is newer than this program")
)

// Find returns the task whose id, else whose ref, is key: how people name a
// task. It fails with ErrNotFound when neither matches.
func Find(ctx context.Context, s Store, key string) (*Task, error) {
	t, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		t, err = s.GetByRef(ctx, key)
	}
	return t, err
}
