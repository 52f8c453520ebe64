package gateway

import (
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/states"
)

// key names a client's task: ids are the gateway's, refs hold both.
type key struct {
	client string
	id     int64
}

// entry is what the gateway knows of one task: enough to answer res.php
// without the store, and the gateway's own data, which the engine does
// not keep (the pingback URL, whether a report was made, a price asked).
type entry struct {
	task       string // the engine's task id; "" before the task is stored
	method     string
	state      states.State
	code       string
	token      string
	providerID string
	cost       string
	seq        uint64
	created    time.Time
	settled    time.Time // zero unless state is settled

	pingback string
	reported bool
}

// view holds the gateway's tasks in memory: every unfinished one, and the
// settled ones for Retain after they settled. The engine's hook keeps it
// current; a poll of a task it does not hold reads the store once.
type view struct {
	retain time.Duration

	mu      sync.Mutex
	m       map[key]*entry
	settled []settledAt // in the order tasks settled, for eviction; settled[head:] are live
	head    int
}

type settledAt struct {
	k  key
	at time.Time
}

func newView(retain time.Duration) *view {
	return &view{retain: retain, m: map[key]*entry{}}
}

// get returns a copy of the entry of k.
func (v *view) get(k key) (entry, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[k]
	if !ok {
		return entry{}, false
	}
	return *e, true
}

// reserve holds an entry for a task about to be stored, so that the
// engine's first moves of it (which may come before Submit returns) find
// its pingback.
func (v *view) reserve(k key, method, pingback string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[k] = &entry{method: method, state: states.Submitting, pingback: pingback, created: now}
}

// drop forgets a reservation whose task was not stored.
func (v *view) drop(k key) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.m[k]; ok && e.task == "" {
		delete(v.m, k)
	}
}

// put records t as the task of k unless the view holds a later move of it
// (a higher sequence number). It returns the entry as it was before (ok
// false when there was none) and as it is now.
func (v *view) put(client string, id int64, t *engine.Task, now time.Time) (before, after entry, ok bool) {
	k := key{client, id}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.evictLocked(now)
	e, ok := v.m[k]
	if ok {
		before = *e
		if e.task != "" && t.Seq < e.seq {
			return before, *e, true
		}
	} else {
		e = &entry{created: t.Created}
		v.m[k] = e
	}
	e.task, e.method, e.state, e.code, e.seq = t.ID, t.Method, t.State, t.Code, t.Seq
	e.token, e.providerID = t.Token, t.ProviderID
	if t.Cost != "" {
		e.cost = t.Cost
	}
	if !t.Created.IsZero() {
		e.created = t.Created
	}
	if p := t.Labels[LabelPingback]; p != "" {
		e.pingback = p
	}
	switch {
	case !t.State.Settled():
		e.settled = time.Time{}
	case e.settled.IsZero():
		e.settled = now
		v.settled = append(v.settled, settledAt{k, now})
	}
	return before, *e, ok
}

// update changes the entry of k with f, if the view holds it.
func (v *view) update(k key, f func(*entry)) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[k]
	if ok {
		f(e)
	}
	return ok
}

// evictLocked forgets tasks settled more than retain ago (a task that
// moved on since, such as a parked one released, stays).
func (v *view) evictLocked(now time.Time) {
	for ; v.head < len(v.settled); v.head++ {
		s := v.settled[v.head]
		if now.Sub(s.at) < v.retain {
			break
		}
		if e, ok := v.m[s.k]; ok && e.state.Settled() && !e.settled.After(s.at) {
			delete(v.m, s.k)
		}
	}
	// Compact once the evicted prefix is the larger half: amortised O(1).
	if v.head > 0 && v.head >= len(v.settled)/2 {
		n := copy(v.settled, v.settled[v.head:])
		clear(v.settled[n:])
		v.settled, v.head = v.settled[:n], 0
	}
}

// size is the number of tasks held.
func (v *view) size() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.m)
}
