package engine

import (
	"container/heap"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/states"
)

type jobKind int

const (
	jobSubmit jobKind = iota
	jobPoll
	// jobExpire: a task whose deadline has passed, to be failed. It sends
	// nothing, so no pacing holds it back.
	jobExpire
)

// job is work handed to a worker: one task to submit, or a batch to poll.
type job struct {
	kind  jobKind
	tasks []*task
}

// scheduler owns the tasks that wait: heaps ordered by next-action time,
// one of tasks waiting to submit (Submitting, Backoff, Resubmitting) and
// one of tasks polling. Its loop hands due work to the workers: submits
// as the limiter allows, polls in batches of the tasks due within a short
// window. No goroutine sleeps per task. Its lock guards the heaps and the
// flags of every task (busy, cancel, lost).
//
// Priority (Request.Priority) orders submits among the tasks that are
// due: a task waiting to submit moves, once its time has come, from
// submitQ to readyQ, which hands out the highest priority first (then the
// earliest due time, then the oldest task). Pacing (submit_rate, the
// provider's window, max_in_flight, bans) takes from readyQ, so a
// backlog goes out by priority; no task leaves before its time. Polls are
// batched by due time alone: a poll is cheap, and a batch takes every task
// due within its window.
//
// A task with a deadline is also in deadlines, ordered by it: one whose
// deadline has passed leaves its queue at once, handed out to be failed,
// whatever the pacing (its NextAt is never after its deadline either: see
// transitions.Input.Deadline).
type scheduler struct {
	lim *limiter
	brk *breaker
	// unparks: a parked task found with the breaker closed is queued, to
	// be released by a worker (a lone engine; in a fleet parked tasks
	// belong to the store).
	unparks bool
	batchN  int           // ids per batched poll
	window  time.Duration // how long a due poll waits for others to join its batch
	maxJobs int           // jobs handed out per round
	wake    chan struct{}
	// maxInFlight bounds the tasks at the provider (Policy.MaxInFlight, 0:
	// none): those polling, counted by polling, and those handed out to
	// submit.
	maxInFlight int
	polling     func() int
	// storeBroken reports the store breaker: while it is open only tasks
	// holding an unrecorded answer are handed out (to record it).
	storeBroken func() bool

	mu        sync.Mutex
	submitQ   taskHeap // waiting to submit, by next-action time
	readyQ    taskHeap // due to submit, by priority
	pollQ     taskHeap // polling, by next-action time
	deadlines taskHeap // every queued active task with a deadline, by it
	sending   int      // submit jobs handed out and not given back
	// awake is true while the loop will look at the queues again before it
	// sleeps (it has jobs to hand out); asleep, it wakes at wakeAt (zero:
	// only when kicked). A task queued for no earlier than that needs no
	// kick.
	awake  bool
	wakeAt time.Time
}

func newScheduler(lim *limiter, brk *breaker, unparks bool, batchN int, window time.Duration, concurrency int) *scheduler {
	return &scheduler{lim: lim, brk: brk, unparks: unparks, batchN: batchN, window: window, maxJobs: 4 * concurrency,
		wake: make(chan struct{}, 1), submitQ: byNextAt(), readyQ: byPriority(), pollQ: byNextAt(),
		deadlines: taskHeap{less: deadlineBefore, index: func(tk *task) *int { return &tk.didx }}}
}

// kick makes the loop look at the queues again.
func (s *scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push queues tk by its state and next-action time (a settled task is not
// queued) and wakes the loop.
func (s *scheduler) push(tk *task) {
	s.mu.Lock()
	s.pushLocked(tk)
	wake := s.wakeNeededLocked(tk)
	s.mu.Unlock()
	if wake {
		s.kick()
	}
}

// wakeNeededLocked reports whether the loop must be kicked for tk, just
// queued: it sleeps past tk's next action or deadline, or the breaker is
// open (parked tasks are handed out whatever their time). Every task given
// back used to kick the loop, several times per solve, for nothing most of
// the time.
func (s *scheduler) wakeNeededLocked(tk *task) bool {
	if tk.q == nil || s.awake {
		return false
	}
	if s.wakeAt.IsZero() || s.brk.isOpen() {
		return true
	}
	t := tk.cur()
	dl := t.Options.Deadline
	return t.NextAt.Before(s.wakeAt) || (!dl.IsZero() && dl.Before(s.wakeAt))
}

func (s *scheduler) pushLocked(tk *task) {
	s.removeLocked(tk)
	var q *taskHeap
	switch tk.cur().State {
	case states.Polling:
		q = &s.pollQ
	case states.Submitting, states.Backoff, states.Resubmitting:
		q = &s.submitQ
	case states.NeedsAccountFix:
		if !s.unparks || s.brk.isOpen() {
			return
		}
		// Parked while the breaker closed (a person's fix raced with
		// the move that parked it): a worker releases it.
		q = &s.submitQ
	default:
		return
	}
	tk.q = q
	heap.Push(q, tk)
	if tk.cur().State.Active() && !tk.cur().Options.Deadline.IsZero() {
		heap.Push(&s.deadlines, tk)
	}
}

func (s *scheduler) removeLocked(tk *task) {
	if tk.q != nil && tk.idx >= 0 {
		heap.Remove(tk.q, tk.idx)
	}
	tk.q = nil
	tk.idx = -1
	if tk.didx >= 0 {
		heap.Remove(&s.deadlines, tk.didx)
	}
}

func (s *scheduler) doneSendingLocked(tk *task) {
	if tk.sending {
		tk.sending = false
		s.sending--
	}
}

// atCapacity reports whether MaxInFlight tasks are at the provider already.
func (s *scheduler) atCapacityLocked() bool {
	return s.maxInFlight > 0 && s.sending+s.polling() >= s.maxInFlight
}

// shiftPollTimers moves the poll timeout of every queued polling task by
// d: polls wait out a ban, which must not fail a task.
func (s *scheduler) shiftPollTimers(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tk := range s.pollQ.items {
		t := tk.cur().Clone()
		t.PollSince = t.PollSince.Add(d)
		tk.snap.Store(t)
	}
}

// run is the scheduling loop: it hands due work to jobs, polls in batches,
// and sleeps until the next due time or a kick, until done is closed.
func (s *scheduler) run(jobs chan<- job, done <-chan struct{}) {
	defer close(jobs)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		due, next := s.collect(now)
		for i, j := range due {
			select {
			case jobs <- j:
			case <-done:
				s.unclaim(due[i:])
				return
			}
		}
		if len(due) > 0 {
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-done:
			return
		}
	}
}

// collect takes the due work off the queues. It returns the jobs and the
// time at which more work falls due (zero: none queued).
func (s *scheduler) collect(now time.Time) ([]job, time.Time) {
	breakerOpen := s.brk.isOpen()
	storeBroken := s.storeBroken != nil && s.storeBroken()
	submitUntil, pollUntil := s.lim.pauses()
	s.mu.Lock()
	var jobs []job
	var next time.Time
	defer func() {
		s.awake, s.wakeAt = len(jobs) > 0, next
		s.mu.Unlock()
	}()
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	take := func(q *taskHeap) *task {
		tk := heap.Pop(q).(*task)
		tk.q = nil
		s.dropDeadlineLocked(tk)
		tk.busy = true
		return tk
	}
	// Deadlines first: a task whose deadline has passed is failed at once,
	// whatever paces the requests (it sends none), unless its last step
	// failed to commit a moment ago (held).
	var held []*task
	for s.deadlines.Len() > 0 {
		tk := s.deadlines.items[0]
		dl := tk.cur().Options.Deadline
		if dl.After(now) {
			later(dl)
			break
		}
		heap.Pop(&s.deadlines)
		if tk.hold.After(now) {
			held = append(held, tk)
			later(tk.hold)
			continue
		}
		q := tk.q
		heap.Remove(q, tk.idx)
		tk.q, tk.idx = nil, -1
		tk.busy = true
		jobs = append(jobs, job{kind: jobExpire, tasks: []*task{tk}})
	}
	for _, tk := range held {
		heap.Push(&s.deadlines, tk)
	}
	// Submits: the tasks whose time has come join readyQ, which gives them
	// out by priority. With the breaker open every task goes, to be parked
	// without sending.
	for s.submitQ.Len() > 0 {
		tk := s.submitQ.items[0]
		if at := tk.cur().NextAt; at.After(now) && !breakerOpen {
			later(at)
			break
		}
		heap.Pop(&s.submitQ)
		tk.q = &s.readyQ
		heap.Push(&s.readyQ, tk)
	}
	held = held[:0]
	grouped := false
	defer func() {
		for _, tk := range held {
			tk.q = &s.readyQ
			heap.Push(&s.readyQ, tk)
		}
	}()
	for s.readyQ.Len() > 0 {
		tk := s.readyQ.items[0]
		if breakerOpen {
			// Handed out at once, to be parked, but for a task whose
			// last step failed to commit (held a moment).
			if tk.hold.After(now) {
				held = append(held, heap.Pop(&s.readyQ).(*task))
				later(tk.hold)
				continue
			}
		} else if tk.pending == nil {
			// A task holding an unrecorded answer sends nothing: it only
			// records the answer, whatever paces the sends.
			if storeBroken {
				// New money waits for the store; looked at again each
				// second.
				held = append(held, heap.Pop(&s.readyQ).(*task))
				later(now.Add(time.Second))
				continue
			}
			if now.Before(submitUntil) {
				later(submitUntil)
				break
			}
			if s.atCapacityLocked() {
				break // a task leaving Polling kicks the loop
			}
			if !grouped {
				// The first paced submit of the round waits until the
				// tokens for all those due with it (up to a group) are
				// there: handed out together, their intents share a
				// commit, and so do their answers when they come back
				// together.
				grouped = true
				if d := s.lim.groupDelay(now, s.readySubmitsLocked(s.lim.groupSize())); d > 0 {
					later(now.Add(d))
					break
				}
			}
			if d := s.lim.submitDelay(now); d > 0 {
				later(now.Add(d))
				break
			}
		}
		tk = take(&s.readyQ)
		if !breakerOpen && tk.pending == nil {
			tk.sending = true
			s.sending++
		}
		jobs = append(jobs, job{kind: jobSubmit, tasks: []*task{tk}})
		if len(jobs) >= s.maxJobs {
			later(now)
			break
		}
	}
	// Polls, batched: when the first is due, it waits up to the window
	// for the next ones to fall due and join its batch (a lone task does
	// not wait), then every task due goes. No task is polled before its
	// time: the provider penalises polls sooner than its minimum, and the
	// policy's waits are at least that.
	if s.pollQ.Len() > 0 {
		first := s.pollQ.items[0].cur().NextAt
		ok, retry := s.lim.pollAllowed(now)
		switch {
		case now.Before(pollUntil):
			later(pollUntil)
		case first.After(now):
			later(first)
		case !ok:
			later(retry)
		default:
			// Counted in place first: the loop wakes at every task
			// queued sooner than it would, and taking the due tasks off
			// the heap only to push them back while the window lasts
			// cost more than the polls.
			n := 0
			at := s.pollQ.due(now, func(*task) bool { n++; return n < s.batchN })
			if n < s.batchN && !at.IsZero() && !at.After(first.Add(s.window)) {
				// The next falls due within the window: wait for it.
				later(at)
				break
			}
			var due []*task
			for s.pollQ.Len() > 0 && !s.pollQ.items[0].cur().NextAt.After(now) {
				due = append(due, take(&s.pollQ))
			}
			for len(due) > 0 {
				n := min(len(due), s.batchN)
				jobs = append(jobs, job{kind: jobPoll, tasks: due[:n:n]})
				due = due[n:]
				if !s.lim.notePoll(now) && len(due) > 0 {
					for _, tk := range due {
						tk.busy = false
						s.pushLocked(tk)
					}
					break
				}
			}
			if s.pollQ.Len() > 0 {
				later(s.pollQ.items[0].cur().NextAt)
			}
		}
	}
	return jobs, next
}

// readySubmitsLocked counts the due submits that the limiter paces (no
// unrecorded answer), up to most.
func (s *scheduler) readySubmitsLocked(most int) int {
	n := 0
	for _, tk := range s.readyQ.items {
		if n >= most {
			break
		}
		if tk.pending == nil {
			n++
		}
	}
	return n
}

// dropDeadlineLocked takes tk out of deadlines, if it is there.
func (s *scheduler) dropDeadlineLocked(tk *task) {
	if tk.didx >= 0 {
		heap.Remove(&s.deadlines, tk.didx)
	}
}

// retryLater keeps tk's state and moves its next action (in memory only)
// after a step that could not be committed or had to wait. The caller owns
// tk.
func retryLater(tk *task, at time.Time) {
	t := tk.cur().Clone()
	t.NextAt = at
	tk.snap.Store(t)
	tk.hold = at
}
