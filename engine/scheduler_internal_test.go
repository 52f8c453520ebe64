package engine

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// TestTaskHeapDue: due visits exactly the tasks due and finds the earliest
// of the others, as popping them all would, on heaps of every shape.
func TestTaskHeapDue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1000, 0)
	for round := range 500 {
		h := byNextAt()
		n := rng.IntN(60)
		for range n {
			at := base.Add(time.Duration(rng.IntN(40)) * 100 * time.Millisecond)
			heap.Push(&h, newTask(&persist.Task{NextAt: at}))
		}
		now := base.Add(time.Duration(rng.IntN(40)) * 100 * time.Millisecond)
		wantDue, wantNext := 0, time.Time{}
		for _, tk := range h.items {
			if at := tk.cur().NextAt; !at.After(now) {
				wantDue++
			} else if wantNext.IsZero() || at.Before(wantNext) {
				wantNext = at
			}
		}
		got := 0
		next := h.due(now, func(tk *task) bool {
			assert.False(t, tk.cur().NextAt.After(now), "round %d: a task not due visited", round)
			got++
			return true
		})
		assert.Equal(t, wantDue, got, "round %d: due tasks", round)
		assert.True(t, wantNext.Equal(next), "round %d: next %v, want %v", round, next, wantNext)

		if wantDue > 2 {
			stopped := 0
			h.due(now, func(*task) bool { stopped++; return stopped < 2 })
			assert.Equal(t, 2, stopped, "round %d: visit stops the walk", round)
		}
	}
}

// TestKickOnlyWhenNeeded: a task queued for later than the sleeping loop's
// next wake does not wake it; one due sooner, or any while the breaker is
// open, does; nor is the loop woken while it still has jobs to hand out.
func TestKickOnlyWhenNeeded(t *testing.T) {
	now := time.Now()
	brk := &breaker{}
	s := newScheduler(newLimiter(20, true), brk, true, 100, time.Second, 4)
	woken := func() bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	polling := func(id string, at time.Time) *task {
		return newTask(&persist.Task{ID: id, State: states.Polling, NextAt: at})
	}
	s.push(polling("a", now.Add(10*time.Second)))
	assert.True(t, woken(), "the loop had no wake time")
	jobs, next := s.collect(now)
	assert.Empty(t, jobs)
	assert.True(t, next.Equal(now.Add(10*time.Second)))

	s.push(polling("b", now.Add(20*time.Second)))
	assert.False(t, woken(), "b is due after the loop wakes anyway")
	s.push(polling("c", now.Add(5*time.Second)))
	assert.True(t, woken(), "c is due before the loop would wake")
	_, next = s.collect(now)
	assert.True(t, next.Equal(now.Add(5*time.Second)))
	late := polling("dl", now.Add(time.Minute))
	late.snap.Load().Options.Deadline = now.Add(2 * time.Second)
	s.push(late)
	assert.True(t, woken(), "its deadline passes before the loop would wake")

	brk.mu.Lock()
	brk.open = true
	brk.mu.Unlock()
	s.push(newTask(&persist.Task{ID: "d", State: states.Submitting, NextAt: now.Add(time.Hour)}))
	assert.True(t, woken(), "parked at once while the breaker is open")
	brk.mu.Lock()
	brk.open = false
	brk.mu.Unlock()

	jobs, _ = s.collect(now.Add(time.Hour))
	require.NotEmpty(t, jobs)
	s.push(polling("e", now))
	assert.False(t, woken(), "the loop looks again after handing its jobs out")
}
