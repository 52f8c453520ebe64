package boltstore

import (
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// maxCached bounds the committed-task cache. Only tasks in flight (applied
// at least once, not yet terminal) are kept, so the bound is rarely met;
// past it new tasks are not cached and their callers read the file.
const maxCached = 16384

// committed is a task as the store's commits last wrote it (the loop's, or
// a lone caller's: see commitInline).
type committed struct {
	val         []byte // the stored value
	state       states.State
	seq         uint64
	ref, method string
	options     persist.TaskOptions
	created     time.Time
	dueAt       time.Time // the stored DueAt: where the due index holds it
}

// commitCache remembers the value of every task the store's commits wrote,
// so the next Apply of the task checks and prepares its transition without
// a read transaction. It is a hint: each commit compares the stored bytes
// anyway.
type commitCache struct {
	mu sync.Mutex
	m  map[string]committed
}

func (c *commitCache) get(id string) (committed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	return e, ok
}

// markTrusted sets r.trusted for each request whose caller took the stored
// value from the cache and whose entry still holds that very value (the
// same bytes in memory, not only equal ones): the task has not been
// written since.
func (c *commitCache) markTrusted(reqs []*applyReq) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range reqs {
		e, ok := c.m[r.task.ID]
		r.trusted = ok && len(e.val) > 0 && len(r.stored) > 0 && &e.val[0] == &r.stored[0]
	}
}

// update records the requests of a commit.
func (c *commitCache) update(reqs []*applyReq) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]committed{}
	}
	for _, r := range reqs {
		if r.err != nil {
			continue
		}
		id := r.task.ID
		if _, ok := c.m[id]; r.task.State.Terminal() || (!ok && len(c.m) >= maxCached) {
			delete(c.m, id)
			continue
		}
		c.m[id] = committed{val: r.taskVal, state: r.task.State, seq: r.task.Seq,
			ref: r.task.Ref, method: r.task.Method, options: r.task.Options, created: r.task.Created, dueAt: r.task.DueAt}
	}
	if len(c.m) == 0 {
		// Go maps keep their buckets when emptied: once every task in
		// flight has ended, let a batch's worth of them go.
		c.m = nil
	}
}

// forget drops every entry: the file changed under the cache.
func (c *commitCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
