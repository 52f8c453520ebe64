package engine

import (
	"sync"
	"time"
)

// pollBudget keeps res.php requests under the provider's rule: at most
// 20 × captchas + 1200 requests in an hour, counted over the last 60
// minutes. The engine spends at most 90 % of it.
type pollBudget struct {
	polls   [60]int
	accepts [60]int
	start   [60]int64 // the Unix minute each slot holds
}

func (b *pollBudget) slot(now time.Time) int {
	m := now.Unix() / 60
	i := int(m % 60)
	if b.start[i] != m {
		b.start[i] = m
		b.polls[i] = 0
		b.accepts[i] = 0
	}
	return i
}

// note counts polls and accepted submits at now. The caller holds the
// engine's lock.
func (b *pollBudget) note(now time.Time, polls, accepts int) {
	i := b.slot(now)
	b.polls[i] += polls
	b.accepts[i] += accepts
}

// noteLocked is note taking mu itself.
func (b *pollBudget) noteLocked(mu *sync.Mutex, now time.Time, polls, accepts int) {
	if polls == 0 && accepts == 0 {
		return
	}
	mu.Lock()
	b.note(now, polls, accepts)
	mu.Unlock()
}

func (b *pollBudget) totals(now time.Time) (polls, accepts int) {
	m := now.Unix() / 60
	for i := range 60 {
		if m-b.start[i] < 60 {
			polls += b.polls[i]
			accepts += b.accepts[i]
		}
	}
	return polls, accepts
}

// allow reports whether one more poll stays within 90 % of the budget.
func (b *pollBudget) allow(now time.Time) bool {
	polls, accepts := b.totals(now)
	return float64(polls+1) <= 0.9*float64(20*accepts+1200)
}

// nextMinute is when the oldest minute leaves the window.
func (b *pollBudget) nextMinute(now time.Time) time.Time {
	return now.Truncate(time.Minute).Add(time.Minute)
}

// submitWindow keeps in.php requests under the provider's rule of at most
// 60 in any 3 seconds (MAX_USER_TURN beyond), with a margin. The token
// bucket alone allows 3·rate + burst in 3 s, one too many at 20/s. The
// caller holds the engine's lock.
type submitWindow struct {
	ring [submitWindowMax]time.Time // send times, oldest at next
	next int
	full bool
}

const (
	submitWindowMax = 57
	submitWindowLen = 3 * time.Second
)

// delay is how long a send at now must wait to stay within the window.
func (w *submitWindow) delay(now time.Time) time.Duration {
	if !w.full {
		return 0
	}
	return max(w.ring[w.next].Add(submitWindowLen).Sub(now), 0)
}

// book records a send at now.
func (w *submitWindow) book(now time.Time) {
	w.ring[w.next] = now
	w.next = (w.next + 1) % submitWindowMax
	if w.next == 0 {
		w.full = true
	}
}
