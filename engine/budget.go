package engine

import (
	"time"

	"github.com/captchafsm/captchafsm/provider"
)

// The provider's limits (provider/limits.go) as the engine spends them:
// with a margin, since a request is counted where it arrives, a little
// after it leaves.
const (
	// submitWindowMax of provider.SubmitBurst in.php requests may leave in
	// any provider.SubmitBurstWindow: three requests (150 ms at 20/s) of
	// room for requests that arrive bunched.
	submitWindowMax = provider.SubmitBurst - 3
	submitWindowLen = provider.SubmitBurstWindow
	// pollBudgetShare of provider.PollBudget is spent.
	pollBudgetShare = 0.9
	// budgetSlots minutes make the budget's window.
	budgetSlots = int(provider.PollBudgetWindow / time.Minute)
)

// pollBudget keeps res.php requests under the provider's rule:
// provider.PollBudget(captchas accepted) requests in the last hour, counted
// by the minute. The engine spends at most pollBudgetShare of it. The
// limiter's lock guards it.
type pollBudget struct {
	polls   [budgetSlots]int
	accepts [budgetSlots]int
	start   [budgetSlots]int64 // the Unix minute each slot holds
}

func (b *pollBudget) slot(now time.Time) int {
	m := now.Unix() / 60
	i := int(m % int64(budgetSlots))
	if b.start[i] != m {
		b.start[i] = m
		b.polls[i] = 0
		b.accepts[i] = 0
	}
	return i
}

// note counts polls and accepted submits at now.
func (b *pollBudget) note(now time.Time, polls, accepts int) {
	i := b.slot(now)
	b.polls[i] += polls
	b.accepts[i] += accepts
}

func (b *pollBudget) totals(now time.Time) (polls, accepts int) {
	m := now.Unix() / 60
	for i := range budgetSlots {
		if m-b.start[i] < int64(budgetSlots) {
			polls += b.polls[i]
			accepts += b.accepts[i]
		}
	}
	return polls, accepts
}

// allow reports whether one more poll stays within the budget's share.
func (b *pollBudget) allow(now time.Time) bool {
	polls, accepts := b.totals(now)
	return float64(polls+1) <= pollBudgetShare*float64(provider.PollBudget(accepts))
}

// nextMinute is when the oldest minute leaves the window.
func (b *pollBudget) nextMinute(now time.Time) time.Time {
	return now.Truncate(time.Minute).Add(time.Minute)
}

// sendWindow keeps sends under a sliding-window rule: at most len(ring)
// in any span, counting the moments requests leave. The engine keeps two
// for in.php: the provider's burst rule (provider.SubmitBurst in any
// provider.SubmitBurstWindow, MAX_USER_TURN beyond) with a margin, and
// submit_rate's per second. The limiter's lock guards them.
type sendWindow struct {
	span time.Duration
	ring []time.Time // send times, oldest at next
	next int
	full bool
}

func newSendWindow(n int, span time.Duration) sendWindow {
	return sendWindow{span: span, ring: make([]time.Time, n)}
}

// delay is how long a send at now must wait to stay within the window.
func (w *sendWindow) delay(now time.Time) time.Duration {
	if !w.full {
		return 0
	}
	return max(w.ring[w.next].Add(w.span).Sub(now), 0)
}

// book records a send at now.
func (w *sendWindow) book(now time.Time) {
	w.ring[w.next] = now
	w.next = (w.next + 1) % len(w.ring)
	if w.next == 0 {
		w.full = true
	}
}
