package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/states"
)

// TestViewKeepsSettledTasksForRetain: settled tasks leave memory Retain
// after they settled, unfinished ones never; a stale move never replaces a
// later one.
func TestViewKeepsSettledTasksForRetain(t *testing.T) {
	v := newView(time.Minute)
	t0 := time.Unix(1_700_000_000, 0)
	task := func(id string, s states.State, seq uint64) *engine.Task {
		return &engine.Task{ID: id, State: s, Seq: seq, Created: t0}
	}
	for i := range 100 { // one settles every second; each put evicts what settled a minute before it
		v.put("a", int64(i+1), task("done", states.Done, 5), t0.Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, 60, v.size(), "those settled in the last minute (40 s to 99 s)")
	_, held := v.get(key{"a", 40})
	assert.False(t, held)
	_, held = v.get(key{"a", 41})
	assert.True(t, held)

	v.put("a", 1000, task("open", states.Polling, 3), t0)
	_, _, ok := v.put("a", 1000, task("open", states.Submitting, 2), t0) // a stale move
	assert.True(t, ok)
	e, _ := v.get(key{"a", 1000})
	assert.Equal(t, states.Polling, e.state, "the later move stays")
	v.put("b", 1, task("x", states.Polling, 1), t0)

	v.put("b", 2, task("y", states.Polling, 1), t0.Add(time.Hour))
	assert.Equal(t, 3, v.size(), "only unfinished tasks are left")
	_, held = v.get(key{"a", 1000})
	assert.True(t, held)
	assert.LessOrEqual(t, len(v.settled), 100, "the eviction queue is compacted")
}
