package engine

// Who owns a task at a given moment: the scheduler while it waits in a
// queue, else the one caller that claimed it (a worker, Cancel,
// AccountFixed), until it gives it back. docs/architecture.md has the
// whole story.

import "github.com/captchafsm/captchafsm/states"

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
