package engine

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/transitions"
)

// The store breaker. An in.php answer the store failed to record is held
// in memory and its commit tried again with backoff; it must not be sent
// again (the provider charged it). While any such answer is held, no new
// in.php request leaves: polls of tasks already paid for go on, new money
// waits for the store. At most Policy.Concurrency paid answers can be
// unrecorded at once: those whose requests were in flight when the first
// commit failed.

// Unrecorded is an in.php answer held in memory because the store could
// not record it.
type Unrecorded struct {
	TaskID     string
	ProviderID string            // the provider's id, when in.php accepted the task (paid)
	Event      transitions.Event // the move the answer calls for
	Since      time.Time         // when its first commit failed
}

// Paid reports whether the provider accepted (and charged) the task.
func (u Unrecorded) Paid() bool { return u.Event == transitions.SubmitAccepted }

// ErrUnrecorded matches a *StoreFailureError.
var ErrUnrecorded = errors.New("engine: in.php answers not recorded")

// StoreFailureError names the in.php answers the store could not record:
// sent by StoreFailure when the store fails for longer than
// Policy.StoreFailureLimit, and returned by Shutdown for those still
// unrecorded when it stops. A task named here is recorded as possibly
// charged when it resumes (its intent to submit is the last record on
// disk).
type StoreFailureError struct {
	Since   time.Time
	Answers []Unrecorded
	Err     error // the store's last error
}

func (e *StoreFailureError) Error() string {
	paid := 0
	var names []string
	for _, u := range e.Answers {
		if u.Paid() {
			paid++
			names = append(names, fmt.Sprintf("%s (provider id %s)", u.TaskID, u.ProviderID))
		} else {
			names = append(names, fmt.Sprintf("%s (%s)", u.TaskID, u.Event))
		}
	}
	return fmt.Sprintf("engine: the store has failed to record %d in.php answers (%d paid) since %s: %v; "+
		"they are recorded as possibly charged when the tasks resume: %s",
		len(e.Answers), paid, e.Since.Format(time.RFC3339), e.Err, strings.Join(names, ", "))
}

// Is matches ErrUnrecorded.
func (e *StoreFailureError) Is(target error) bool { return target == ErrUnrecorded }

// Unwrap returns the store's last error.
func (e *StoreFailureError) Unwrap() error { return e.Err }

// unrecorded holds the in.php answers not yet on disk. It owns its map
// behind its own lock.
type unrecorded struct {
	limit time.Duration
	n     atomic.Int32 // len(held), read without the lock on every commit

	mu      sync.Mutex
	held    map[string]Unrecorded
	since   time.Time // the current outage began
	lastErr error
	loud    time.Time // the last time the outage was logged
	timer   *time.Timer
	failed  chan *StoreFailureError // one report per outage past the limit
}

func newUnrecorded(limit time.Duration) *unrecorded {
	return &unrecorded{limit: limit, held: map[string]Unrecorded{}, failed: make(chan *StoreFailureError, 1)}
}

// hold keeps u, whose commit failed with err. It reports whether the
// outage is to be logged now (its start, then every 30 s).
func (r *unrecorded) hold(u Unrecorded, err error) (logNow bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if old, ok := r.held[u.TaskID]; ok {
		u.Since = old.Since
	} else {
		u.Since = now
	}
	r.held[u.TaskID] = u
	r.n.Store(int32(len(r.held)))
	r.lastErr = err
	if r.since.IsZero() {
		r.since = now
		start := now
		r.timer = time.AfterFunc(r.limit, func() { r.expire(start) })
	}
	if now.Sub(r.loud) >= 30*time.Second {
		r.loud = now
		return true
	}
	return false
}

// drop forgets the answer of task id, now recorded; the outage ends with
// the last one.
func (r *unrecorded) drop(id string) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.held[id]; !ok {
		return
	}
	delete(r.held, id)
	r.n.Store(int32(len(r.held)))
	if len(r.held) == 0 {
		r.since, r.loud = time.Time{}, time.Time{}
		if r.timer != nil {
			r.timer.Stop()
		}
	}
}

// expire reports the outage that began at start if it still goes on.
func (r *unrecorded) expire(start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.since.Equal(start) || len(r.held) == 0 {
		return
	}
	select {
	case r.failed <- r.errorLocked():
	default:
	}
}

// open reports whether an answer is held: no new in.php may leave.
func (r *unrecorded) open() bool { return r.n.Load() > 0 }

// count is how many answers are held.
func (r *unrecorded) count() int { return int(r.n.Load()) }

// report returns the held answers as an error, nil when none is held.
func (r *unrecorded) report() *StoreFailureError {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 {
		return nil
	}
	return r.errorLocked()
}

func (r *unrecorded) errorLocked() *StoreFailureError {
	e := &StoreFailureError{Since: r.since, Err: r.lastErr}
	for _, u := range r.held {
		e.Answers = append(e.Answers, u)
	}
	return e
}

// StoreFailure returns a channel that receives an error when the store has
// failed to record in.php answers for longer than Policy.StoreFailureLimit
// (once per outage). Meanwhile the engine sends no new in.php request and
// keeps trying; a program that cannot wait stops and exits with it.
func (e *Engine) StoreFailure() <-chan *StoreFailureError { return e.unrec.failed }

// Unrecorded returns the in.php answers the store has not recorded yet.
func (e *Engine) Unrecorded() []Unrecorded {
	if r := e.unrec.report(); r != nil {
		return r.Answers
	}
	return nil
}
