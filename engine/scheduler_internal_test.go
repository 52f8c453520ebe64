package engine

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/persist"
)

// TestTaskHeapDue: due visits exactly the tasks due and finds the earliest
// of the others, as popping them all would, on heaps of every shape.
func TestTaskHeapDue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1000, 0)
	for round := range 500 {
		var h taskHeap
		n := rng.IntN(60)
		for range n {
			at := base.Add(time.Duration(rng.IntN(40)) * 100 * time.Millisecond)
			heap.Push(&h, newTask(&persist.Task{NextAt: at}))
		}
		now := base.Add(time.Duration(rng.IntN(40)) * 100 * time.Millisecond)
		wantDue, wantNext := 0, time.Time{}
		for _, tk := range h {
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
