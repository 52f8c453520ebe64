package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// task is the engine's in-memory view of one task it drives or holds
// parked.
//
// Who owns it: a task is either queued (the scheduler owns it) or busy
// (one goroutine owns it: the worker the scheduler handed it to, or Cancel
// and AccountFixed, which claim a task that is neither). Only its owner
// replaces its snapshot or touches the owner's fields below; the scheduler's
// lock guards the flags that others set.
type task struct {
	// snap is the task as last committed (without Params), replaced whole
	// and never changed in place, so that Wait and the dashboard read it
	// without a lock.
	snap atomic.Pointer[persist.Task]

	// Guarded by scheduler.mu.
	idx     int       // index in q, -1 when not queued
	q       *taskHeap // the queue holding the task, nil when not queued
	didx    int       // index in the scheduler's deadlines, -1 when not there
	busy    bool      // a goroutine owns the task
	sending bool      // handed out to submit: counted at the provider
	cancel  bool      // Cancel asked while the task was busy
	lost    bool      // another engine took the lease over

	// The owner's.
	intent   bool                  // the last committed record is the intent to submit
	slot     time.Time             // the fleet's in.php slot booked for the task
	pending  *transitions.Decision // an answer's move whose commit failed: committed next, not sent again
	hold     time.Time             // a step that could not be committed is tried again then
	failures int                   // commits failed in a row: the retry's backoff
}

func newTask(t *persist.Task) *task {
	tk := &task{idx: -1, didx: -1}
	tk.snap.Store(t)
	return tk
}

// cur is the task as last committed (or as its owner rescheduled it).
func (tk *task) cur() *persist.Task { return tk.snap.Load() }

// moved updates the owner's fields after a committed move to to by ev.
func (tk *task) moved(to states.State, ev transitions.Event) {
	tk.intent = transitions.InDoubt(ev)
	tk.hold = time.Time{}
	if to != states.Submitting {
		tk.pending = nil
	}
}

// registry holds the tasks an engine has in memory and everyone who waits
// on them: Wait callers, subscribers, the hook, and the count Drain
// watches. It owns its map and counts behind its own lock; it never calls
// out while holding it, but for the subscribers' buffered channels.
type registry struct {
	hook func(Transition)
	// keepParked: a lone engine keeps its parked tasks (AccountFixed
	// releases them); a fleet member lets them go to the store.
	keepParked bool

	mu    sync.Mutex
	tasks map[string]*task
	// left, while the pager reads the store, collects the ids that leave
	// the engine meanwhile: that read may still show them active.
	left    map[string]bool
	reading int
	waiters map[string][]chan struct{} // closed when the task settles
	movers  map[string][]chan struct{} // closed at the task's next move
	subs    map[int]chan Transition
	nextSub int
	active  int           // tasks still to drive (not settled)
	parkedN int           // tasks held in NeedsAccountFix
	pollN   int           // tasks held in Polling: at the provider
	changed chan struct{} // closed (and replaced) when active or parkedN changes
}

func newRegistry(hook func(Transition), keepParked bool) *registry {
	r := &registry{hook: hook, keepParked: keepParked, tasks: map[string]*task{},
		waiters: map[string][]chan struct{}{}, movers: map[string][]chan struct{}{},
		subs: map[int]chan Transition{}, changed: make(chan struct{})}
	return r
}

// add takes tk in; false when a task of that id is held already.
func (r *registry) add(tk *task) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := tk.cur().ID
	if _, held := r.tasks[id]; held {
		return false
	}
	r.tasks[id] = tk
	r.countLocked(tk.cur().State, 1)
	return true
}

// beginRead marks the start of a read of the store whose tasks the engine
// may take in, and endRead its end, once every task read was judged with
// unknown: the read may show a task that left the engine since it began
// (it settled) as it was before.
func (r *registry) beginRead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reading == 0 {
		r.left = map[string]bool{}
	}
	r.reading++
}

func (r *registry) endRead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reading--; r.reading == 0 {
		r.left = nil
	}
}

// unknown reports, between beginRead and endRead, whether the task of id
// is neither held nor gone since the read began: a copy of it read then is
// its latest.
func (r *registry) unknown(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, held := r.tasks[id]
	return !held && !r.left[id]
}

// get returns the task of id, nil when the engine does not hold it.
func (r *registry) get(id string) *task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tasks[id]
}

// parked returns the tasks held in NeedsAccountFix.
func (r *registry) parked() []*task {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*task
	for _, tk := range r.tasks {
		if tk.cur().State == states.NeedsAccountFix {
			out = append(out, tk)
		}
	}
	return out
}

// all returns every task held, in no order.
func (r *registry) all() []*task {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*task, 0, len(r.tasks))
	for _, tk := range r.tasks {
		out = append(out, tk)
	}
	return out
}

// len is how many tasks the engine holds.
func (r *registry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tasks)
}

// watch returns the task's snapshot and, when it is held and not settled, a
// channel closed when it settles (or leaves the engine). held is false when
// the engine does not hold the task.
func (r *registry) watch(id string) (snap *persist.Task, ch chan struct{}, held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tk, held := r.tasks[id]
	if !held {
		return nil, nil, false
	}
	snap = tk.cur()
	if !snap.State.Settled() {
		ch = make(chan struct{})
		r.waiters[id] = append(r.waiters[id], ch)
	}
	return snap, ch, true
}

// nextMove returns a channel closed at the next move published for id (or
// when the engine lets it go).
func (r *registry) nextMove(id string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	r.movers[id] = append(r.movers[id], ch)
	return ch
}

// publish makes next, reached from from by rec, tk's snapshot: the counts
// Drain watches follow, waiters of a settled task wake, a terminal task (or
// a parked one in a fleet) leaves the engine, and the subscribers and the
// hook see the move. The caller owns tk.
func (r *registry) publish(tk *task, from states.State, next *persist.Task, rec persist.Record) {
	to := next.State
	r.mu.Lock()
	tk.snap.Store(next)
	r.movedLocked(next.ID)
	// The watchers are told once, and only when a count they read moved:
	// Submitting to Polling leaves them as they were.
	active, parked := r.active, r.parkedN
	if from != to {
		r.adjustLocked(from, -1)
		r.adjustLocked(to, 1)
	}
	if to.Settled() {
		r.wakeLocked(next.ID)
		if to.Terminal() || !r.keepParked {
			delete(r.tasks, next.ID)
			r.adjustLocked(to, -1)
			if r.reading > 0 {
				r.left[next.ID] = true
			}
		}
	}
	r.changedLocked(active, parked)
	var tr Transition
	if r.hook != nil || len(r.subs) > 0 {
		tr = Transition{Task: TaskOf(next), Record: rec}
		for _, ch := range r.subs {
			select {
			case ch <- tr:
			default:
			}
		}
	}
	r.mu.Unlock()
	if r.hook != nil {
		r.hook(tr)
	}
}

// announce tells the subscribers and the hook about a record of a task
// the engine does not hold (a report on a Done task).
func (r *registry) announce(tr Transition) {
	r.mu.Lock()
	for _, ch := range r.subs {
		select {
		case ch <- tr:
		default:
		}
	}
	r.mu.Unlock()
	if r.hook != nil {
		r.hook(tr)
	}
}

// drop forgets tk (another engine took it over): its waiters go back to
// watching the store, where the new owner's moves land.
func (r *registry) drop(tk *task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := tk.cur().ID
	r.wakeLocked(id)
	r.movedLocked(id)
	if _, ok := r.tasks[id]; ok {
		delete(r.tasks, id)
		r.countLocked(tk.cur().State, -1)
		if r.reading > 0 {
			r.left[id] = true
		}
	}
}

func (r *registry) movedLocked(id string) {
	if chs, ok := r.movers[id]; ok {
		for _, ch := range chs {
			close(ch)
		}
		delete(r.movers, id)
	}
}

func (r *registry) wakeLocked(id string) {
	for _, ch := range r.waiters[id] {
		close(ch)
	}
	delete(r.waiters, id)
}

// wakeAll wakes every waiter (at shutdown).
func (r *registry) wakeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.waiters {
		r.wakeLocked(id)
	}
	for id := range r.movers {
		r.movedLocked(id)
	}
}

// countLocked adds n tasks in state s to the counts Drain watches.
func (r *registry) countLocked(s states.State, n int) {
	active, parked := r.active, r.parkedN
	r.adjustLocked(s, n)
	r.changedLocked(active, parked)
}

// adjustLocked adds n tasks in state s to the counts, telling no one.
func (r *registry) adjustLocked(s states.State, n int) {
	if s == states.Polling {
		r.pollN += n
	}
	switch {
	case s.Active():
		r.active += n
	case s == states.NeedsAccountFix:
		r.parkedN += n
	}
}

// changedLocked wakes the watchers (Drain, the pager) when the counts
// differ from active and parked.
func (r *registry) changedLocked(active, parked int) {
	if r.active == active && r.parkedN == parked {
		return
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// activity returns how many tasks are still to drive, how many are parked,
// and a channel closed when either count changes.
func (r *registry) activity() (active, parked int, changed chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active, r.parkedN, r.changed
}

// polling is how many tasks held are in Polling.
func (r *registry) polling() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pollN
}

// subscribe adds a subscriber; the function ends the subscription.
func (r *registry) subscribe(buf int) (<-chan Transition, func()) {
	ch := make(chan Transition, max(buf, 1))
	r.mu.Lock()
	id := r.nextSub
	r.nextSub++
	r.subs[id] = ch
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, id)
			r.mu.Unlock()
			close(ch)
		})
	}
}
