package engine

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchafsm/captchafsm/transitions"
)

// limiter paces the engine's requests under the provider's rules: in.php
// by the policy's submit_rate and the provider's 3-second window, res.php
// by its hourly budget, and both by the pauses that bans and restarts
// impose. Every request the engine sends asks it first. It owns its
// counters behind its own lock and calls nothing while holding it.
type limiter struct {
	// local: this engine paces in.php alone; false in a fleet, whose
	// shared slots pace it (fleetSlotReady).
	local bool

	mu          sync.Mutex
	bucket      *rate.Limiter
	window      sendWindow // the provider's 3-second rule
	second      sendWindow // submit_rate's ⌈rate⌉ in any second
	budget      pollBudget
	submitUntil time.Time // no in.php before (a ban, a restart)
	pollUntil   time.Time // no res.php before (a ban)
}

// submitGroupSpan is how long the scheduler lets due submits wait for one
// another so as to hand them out together (submitGroup): their intents,
// and in.php answers that come back together, then share a commit.
const submitGroupSpan = 200 * time.Millisecond

// submitGroupMax caps a group. 3 divides the window's 57 and 18 (six
// groups a second within the default submit_rate of 20), so groups of 3
// never put more than 57 sends in any 3 seconds nor 20 in any second.
const submitGroupMax = 3

func newLimiter(submitRate float64, local bool) *limiter {
	// The scheduler hands submits out no faster than the window lets them
	// leave (57 in 3 s, 19/s): faster, workers would only wait in
	// awaitSend, holding their tasks.
	windowRate := float64(submitWindowMax) / submitWindowLen.Seconds()
	r := min(submitRate, windowRate)
	g := submitGroup(r)
	// submit_rate bounds every second, not only the average: groups of g
	// leave whole groups per second only, at most ⌈submit_rate⌉ in all
	// (20: 6 groups of 3, 18/s). The per-second window holds the bound
	// where requests leave when a late group closes up on the next.
	if whole := float64(g * (int(math.Ceil(submitRate)) / g)); g > 1 && whole < r {
		r = whole
	}
	return &limiter{local: local, bucket: rate.NewLimiter(rate.Limit(r), g),
		window: newSendWindow(submitWindowMax, submitWindowLen),
		second: newSendWindow(max(1, int(math.Ceil(submitRate))), time.Second)}
}

// submitGroup is how many due submits the scheduler hands out at once at
// rate r (per second): as many as the rate lets leave within
// submitGroupSpan, 1 to submitGroupMax. The bucket's burst is that size,
// so the average rate is unchanged; a slow rate is not bunched.
func submitGroup(r float64) int {
	return max(1, min(submitGroupMax, int(r*submitGroupSpan.Seconds()+1e-9)))
}

// groupDelay is how long the scheduler waits before it hands out the
// first submit of a group of want (the number due, at most the group
// size): until the bucket holds a token for each. The tokens are booked
// one by one by submitDelay.
func (l *limiter) groupDelay(now time.Time, want int) time.Duration {
	if !l.local || want <= 1 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	want = min(want, l.bucket.Burst())
	missing := float64(want) - l.bucket.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing / float64(l.bucket.Limit()) * float64(time.Second)))
}

// groupSize is the number of submits the scheduler gathers into a group.
func (l *limiter) groupSize() int {
	if !l.local {
		return 1
	}
	return l.bucket.Burst()
}

// submitDelay is how long the scheduler waits before it hands out the
// next submit (the token bucket of submit_rate); zero books a token. The
// provider's window is held where a request leaves (awaitSend): a submit
// leaves after its intent's commit, and sends booked when they were
// scheduled bunched at the provider.
func (l *limiter) submitDelay(now time.Time) time.Duration {
	if !l.local {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// errPaused: a ban stops in.php until the time it carries.
type errPaused struct{ until time.Time }

func (e errPaused) Error() string { return "in.php paused until " + e.until.Format(time.RFC3339) }

// awaitSend blocks until an in.php request may leave now under the
// provider's 3-second window and (a lone engine) submit_rate's second,
// and books it: every submit passes here, at
// the moment it leaves. A ban in force is an errPaused instead of a wait;
// ctx's end, its error.
func (l *limiter) awaitSend(ctx context.Context) error {
	for {
		now := time.Now()
		l.mu.Lock()
		if now.Before(l.submitUntil) {
			until := l.submitUntil
			l.mu.Unlock()
			return errPaused{until}
		}
		d := l.window.delay(now)
		if l.local {
			d = max(d, l.second.delay(now))
		}
		if d == 0 {
			l.window.book(now)
			if l.local {
				l.second.book(now)
			}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// waitSubmit blocks until the token bucket allows an in.php request (a
// fleet member's fallback when the fleet's slots are out of reach).
func (l *limiter) waitSubmit(ctx context.Context) error { return l.bucket.Wait(ctx) }

// pauses returns until when in.php and res.php requests wait.
func (l *limiter) pauses() (submits, polls time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.submitUntil, l.pollUntil
}

// pollAllowed reports whether one more res.php request at now stays within
// the budget, and when to ask again if not.
func (l *limiter) pollAllowed(now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.budget.allow(now) {
		return true, time.Time{}
	}
	return false, l.budget.nextMinute(now)
}

// notePoll counts a res.php request at now and reports whether another
// still fits.
func (l *limiter) notePoll(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.budget.note(now, 1, 0)
	return l.budget.allow(now)
}

// noteAccepted counts a task the provider accepted: each raises the hourly
// res.php budget.
func (l *limiter) noteAccepted(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.budget.note(now, 0, 1)
}

// holdSubmits keeps in.php requests back until until (a restart inside the
// provider's window).
func (l *limiter) holdSubmits(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.submitUntil) {
		l.submitUntil = until
	}
}

// ban extends the pauses b covers. fresh is false when the pauses already
// reached as far (every task of one batched poll carries the same ban);
// pollShift is how much longer polls now wait, by which the queued tasks'
// poll timeouts move (a ban must not fail a task).
func (l *limiter) ban(b transitions.BanOrder, now time.Time) (fresh bool, pollShift time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.Submits && b.Until.After(l.submitUntil) {
		l.submitUntil = b.Until
		fresh = true
	}
	if b.Polls && b.Until.After(l.pollUntil) {
		pollShift = l.extendPollsLocked(b.Until, now)
		fresh = true
	}
	return fresh, pollShift
}

// follow takes the fleet's pauses; it returns how much longer polls wait.
func (l *limiter) follow(submitUntil, pollUntil, now time.Time) (pollShift time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if submitUntil.After(l.submitUntil) {
		l.submitUntil = submitUntil
	}
	if pollUntil.After(l.pollUntil) {
		pollShift = l.extendPollsLocked(pollUntil, now)
	}
	return pollShift
}

func (l *limiter) extendPollsLocked(until, now time.Time) time.Duration {
	from := now
	if l.pollUntil.After(from) {
		from = l.pollUntil
	}
	l.pollUntil = until
	return max(until.Sub(from), 0)
}
