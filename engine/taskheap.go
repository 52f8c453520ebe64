package engine

import "time"

// taskHeap is a heap of tasks in the order less gives; index is where a
// task keeps its position in it.
type taskHeap struct {
	items []*task
	less  func(a, b *task) bool
	index func(*task) *int
}

func queueIndex(tk *task) *int { return &tk.idx }

// byNextAt orders tasks by next-action time.
func byNextAt() taskHeap {
	return taskHeap{less: func(a, b *task) bool { return a.cur().NextAt.Before(b.cur().NextAt) }, index: queueIndex}
}

// byPriority orders tasks by priority (higher first), then next-action
// time, then id (creation order).
func byPriority() taskHeap {
	return taskHeap{less: func(a, b *task) bool {
		ta, tb := a.cur(), b.cur()
		if pa, pb := ta.Options.Priority, tb.Options.Priority; pa != pb {
			return pa > pb
		}
		if c := ta.NextAt.Compare(tb.NextAt); c != 0 {
			return c < 0
		}
		return ta.ID < tb.ID
	}, index: queueIndex}
}

func deadlineBefore(a, b *task) bool {
	return a.cur().Options.Deadline.Before(b.cur().Options.Deadline)
}

// due calls visit with the tasks of h, a heap by next-action time
// (byNextAt), that are due at now (NextAt not after it), in no particular
// order, until visit returns false. When visit never stops it, next is
// the earliest NextAt of the tasks not due (zero: none). The due tasks of
// such a heap are a subtree at its root, so due reads only them and the
// tasks just below them.
func (h *taskHeap) due(now time.Time, visit func(*task) bool) (next time.Time) {
	h.dueFrom(0, now, visit, &next)
	return next
}

func (h *taskHeap) dueFrom(i int, now time.Time, visit func(*task) bool, next *time.Time) bool {
	if i >= len(h.items) {
		return true
	}
	tk := h.items[i]
	if at := tk.cur().NextAt; at.After(now) {
		if next.IsZero() || at.Before(*next) {
			*next = at
		}
		return true
	}
	return visit(tk) && h.dueFrom(2*i+1, now, visit, next) && h.dueFrom(2*i+2, now, visit, next)
}

func (h *taskHeap) Len() int           { return len(h.items) }
func (h *taskHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *taskHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.index(h.items[i]) = i
	*h.index(h.items[j]) = j
}
func (h *taskHeap) Push(x any) {
	tk := x.(*task)
	*h.index(tk) = len(h.items)
	h.items = append(h.items, tk)
}
func (h *taskHeap) Pop() any {
	old := h.items
	n := len(old)
	tk := old[n-1]
	old[n-1] = nil
	*h.index(tk) = -1
	h.items = old[:n-1]
	return tk
}
