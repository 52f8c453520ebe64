package persist

import (
	"context"
	"errors"
	"time"

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
}

// Clone returns a deep copy of t.
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

// ListOptions filters List.
type ListOptions struct {
	// States keeps tasks in these states only; empty means all.
	States []states.State
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
	// or Submitting; Create sets Seq to 1 and zero Created/Updated to now.
	// A Ref already in the store fails with ErrDuplicateRef, an ID with
	// ErrDuplicateID.
	Create(ctx context.Context, tasks ...*Task) error

	// Apply commits one transition: it appends rec to the task's history and
	// replaces the task's mutable fields with t's (Params, Ref, Method and
	// Created are kept as created), in one transaction. t.State must equal
	// rec.To. The stored task must be in rec.From with Seq equal to t.Seq,
	// else ErrConflict. On success rec.Seq and t.Seq are
	// set to the new record's sequence. Apply returns only once the commit
	// is durable; concurrent callers share commits.
	Apply(ctx context.Context, t *Task, rec *Record) error

	// Get returns the task with its Params, or ErrNotFound.
	Get(ctx context.Context, id string) (*Task, error)
	// GetByRef returns the task whose Ref is ref, or ErrNotFound.
	GetByRef(ctx context.Context, ref string) (*Task, error)
	// List returns tasks (without Params) in id order, that is creation order.
	List(ctx context.Context, opts ListOptions) ([]*Task, error)
	// Count returns the number of tasks per state; states without tasks
	// may be absent.
	Count(ctx context.Context) (map[states.State]int, error)
	// History returns the task's records in sequence order, or ErrNotFound.
	History(ctx context.Context, id string) ([]Record, error)

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
