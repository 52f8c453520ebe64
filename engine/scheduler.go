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
)

// job is work handed to a worker: one task to submit, or a batch to poll.
type job struct {
	kind  jobKind
	tasks []*task
}

// scheduler owns the tasks that wait: two heaps ordered by next-action
// time, one of tasks waiting to submit (Submitting, Backoff, Resubmitting)
// and one of tasks polling. Its loop hands due work to the workers: submits
// as the limiter allows, polls in batches of the tasks due within a short
// window. No goroutine sleeps per task. Its lock guards the heaps and the
// flags of every task (busy, cancel, lost).
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

	mu      sync.Mutex
	submitQ taskHeap
	pollQ   taskHeap
	sending int // submit jobs handed out and not given back
	// awake is true while the loop will look at the queues again before it
	// sleeps (it has jobs to hand out); asleep, it wakes at wakeAt (zero:
	// only when kicked). A task queued for no earlier than that needs no
	// kick.
	awake  bool
	wakeAt time.Time
}

func newScheduler(lim *limiter, brk *breaker, unparks bool, batchN int, window time.Duration, concurrency int) *scheduler {
	return &scheduler{lim: lim, brk: brk, unparks: unparks, batchN: batchN, window: window, maxJobs: 4 * concurrency,
		wake: make(chan struct{}, 1)}
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
// queued: it sleeps past tk's next action, or the breaker is open (parked
// tasks are handed out whatever their time). Every task given back used to
// kick the loop, several times per solve, for nothing most of the time.
func (s *scheduler) wakeNeededLocked(tk *task) bool {
	if tk.q == nil || s.awake {
		return false
	}
	return s.wakeAt.IsZero() || tk.cur().NextAt.Before(s.wakeAt) || s.brk.isOpen()
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
}

func (s *scheduler) removeLocked(tk *task) {
	if tk.q != nil && tk.idx >= 0 {
		heap.Remove(tk.q, tk.idx)
	}
	tk.q = nil
	tk.idx = -1
}

// claim makes the caller tk's owner when no one else is: it leaves its
// queue and is marked busy. When a worker owns it, claim returns false; if
// cancel is set, the worker's release will cancel it.
func (s *scheduler) claim(tk *task, cancel bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk.busy {
		if cancel {
			tk.cancel = true
		}
		return false
	}
	s.removeLocked(tk)
	tk.busy = true
	return true
}

// cancelRequested reports whether a cancellation was asked while tk was
// busy.
func (s *scheduler) cancelRequested(tk *task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tk.cancel
}

// cancelDone ends a cancellation request once it is carried out.
func (s *scheduler) cancelDone(tk *task) {
	s.mu.Lock()
	tk.cancel = false
	s.mu.Unlock()
}

// giveBack ends its owner's hold on tk: a task another engine took over is
// reported lost (the caller drops it); an unsettled one is queued again
// unless requeue is false (shutdown).
func (s *scheduler) giveBack(tk *task, requeue bool) (lost bool) {
	s.mu.Lock()
	tk.busy = false
	s.doneSendingLocked(tk)
	switch {
	case tk.lost:
		s.removeLocked(tk)
		lost = true
	case requeue && (!tk.cur().State.Settled() || tk.cur().State == states.NeedsAccountFix):
		s.pushLocked(tk)
	}
	// With MaxInFlight, a task leaving the provider frees room for a
	// submit: the loop looks again.
	wake := s.maxInFlight > 0 || s.wakeNeededLocked(tk)
	s.mu.Unlock()
	if wake {
		s.kick()
	}
	return lost
}

// markLost records that another engine took tk over; dropNow is true when
// no one owns it, so the caller can forget it at once.
func (s *scheduler) markLost(tk *task) (dropNow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk.lost = true
	if tk.busy {
		return false
	}
	s.removeLocked(tk)
	return true
}

// isLost reports whether another engine took tk over.
func (s *scheduler) isLost(tk *task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tk.lost
}

// unclaim gives back tasks of jobs that were never started.
func (s *scheduler) unclaim(jobs []job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		for _, tk := range j.tasks {
			tk.busy = false
			s.doneSendingLocked(tk)
		}
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
	for _, tk := range s.pollQ {
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
		tk.busy = true
		return tk
	}
	// Submits, in order of next-action time.
	var held []*task
	defer func() {
		for _, tk := range held {
			tk.q = &s.submitQ
			heap.Push(&s.submitQ, tk)
		}
	}()
	grouped := false
	for s.submitQ.Len() > 0 {
		tk := s.submitQ[0]
		if breakerOpen {
			// Handed out at once, to be parked, but for a task whose
			// last step failed to commit (held a moment).
			if tk.hold.After(now) {
				held = append(held, heap.Pop(&s.submitQ).(*task))
				later(tk.hold)
				continue
			}
		} else {
			if at := tk.cur().NextAt; at.After(now) {
				later(at)
				break
			}
			// A task holding an unrecorded answer sends nothing: it only
			// records the answer, whatever paces the sends.
			if tk.pending == nil {
				if storeBroken {
					// New money waits for the store; looked at again
					// each second.
					held = append(held, heap.Pop(&s.submitQ).(*task))
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
					// The first paced submit of the round waits until
					// the tokens for all those due with it (up to a
					// group) are there: handed out together, their
					// intents share a commit, and so do their answers
					// when they come back together.
					grouped = true
					if d := s.lim.groupDelay(now, s.dueSubmitsLocked(now, s.lim.groupSize())); d > 0 {
						later(now.Add(d))
						break
					}
				}
				if d := s.lim.submitDelay(now); d > 0 {
					later(now.Add(d))
					break
				}
			}
		}
		tk = take(&s.submitQ)
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
		first := s.pollQ[0].cur().NextAt
		ok, retry := s.lim.pollAllowed(now)
		switch {
		case now.Before(pollUntil):
			later(pollUntil)
		case first.After(now):
			later(first)
		case !ok:
			later(retry)
		default:
			// Counted in place first: the loop wakes at every task given
			// back, and taking the due tasks off the heap only to push
			// them back while the window lasts cost more than the polls.
			n := 0
			at := s.pollQ.due(now, func(*task) bool { n++; return n < s.batchN })
			if n < s.batchN && !at.IsZero() && !at.After(first.Add(s.window)) {
				// The next falls due within the window: wait for it.
				later(at)
				break
			}
			var due []*task
			for s.pollQ.Len() > 0 && !s.pollQ[0].cur().NextAt.After(now) {
				due = append(due, take(&s.pollQ))
			}
			for len(due) > 0 {
				n := min(len(due), s.batchN)
				jobs = append(jobs, job{kind: jobPoll, tasks: due[:n:n]})
				due = due[n:]
				if !s.lim.notePoll(now) && len(due) > 0 {
					for _, tk := range due {
						tk.busy = false
						tk.q = &s.pollQ
						heap.Push(&s.pollQ, tk)
					}
					break
				}
			}
			if s.pollQ.Len() > 0 {
				later(s.pollQ[0].cur().NextAt)
			}
		}
	}
	return jobs, next
}

// dueSubmitsLocked counts the queued submits due at now that the limiter
// paces (no unrecorded answer), up to most.
func (s *scheduler) dueSubmitsLocked(now time.Time, most int) int {
	n := 0
	s.submitQ.due(now, func(tk *task) bool {
		if tk.pending == nil {
			n++
		}
		return n < most
	})
	return n
}

// taskHeap orders tasks by next-action time.
type taskHeap []*task

// due calls visit with the tasks due at now (NextAt not after it), in no
// particular order, until visit returns false. When visit never stops it,
// next is the earliest NextAt of the tasks not due (zero: none). The due
// tasks of a heap are a subtree at its root, so due reads only them and
// the tasks just below them.
func (h taskHeap) due(now time.Time, visit func(*task) bool) (next time.Time) {
	h.dueFrom(0, now, visit, &next)
	return next
}

func (h taskHeap) dueFrom(i int, now time.Time, visit func(*task) bool, next *time.Time) bool {
	if i >= len(h) {
		return true
	}
	if at := h[i].cur().NextAt; at.After(now) {
		if next.IsZero() || at.Before(*next) {
			*next = at
		}
		return true
	}
	return visit(h[i]) && h.dueFrom(2*i+1, now, visit, next) && h.dueFrom(2*i+2, now, visit, next)
}

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	return h[i].cur().NextAt.Before(h[j].cur().NextAt)
}
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *taskHeap) Push(x any) {
	tk := x.(*task)
	tk.idx = len(*h)
	*h = append(*h, tk)
}
func (h *taskHeap) Pop() any {
	old := *h
	n := len(old)
	tk := old[n-1]
	old[n-1] = nil
	tk.idx = -1
	*h = old[:n-1]
	return tk
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
