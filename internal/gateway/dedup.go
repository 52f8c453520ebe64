package gateway

import (
	"context"
	"sync"
	"time"
)

// dedup answers a client's in.php retry with the id of the task its first
// try created, when that first answer never reached the client.
//
// A retry cannot be told from a second, wanted task by its content alone:
// bots send the same sitekey and page again and again, and each needs its
// own token (tokens are single-use). What tells them apart is whether the
// client got the first id: a client that timed out has closed its
// connection by the time the gateway answers, so the answer is known to be
// lost. So an identical request (same client, same Task.Fingerprint)
// within the window
//
//   - waits while the first one is still being answered (a retry sent
//     while the first try is stuck in a slow commit), then
//   - gets the first id if that answer was lost (undelivered), and
//   - creates its own task if the first answer was delivered, or failed.
//
// Attempts live in memory: after a gateway restart, a retry creates a new
// task (the first one is solved and paid all the same; its ref names the
// client on the dashboard).
type dedup struct {
	window time.Duration // <= 0: off

	mu    sync.Mutex
	m     map[dedupKey]*attempt
	swept time.Time
}

type dedupKey struct {
	client string
	fp     uint64
}

// The states of an attempt.
const (
	attemptInFlight    = iota // being answered
	attemptDelivered          // its answer was written to a client still connected
	attemptUndelivered        // its id was lost with the client's connection
	attemptFailed             // no task was created
)

// attempt is one in.php answer for a (client, fingerprint). Guarded by
// dedup.mu.
type attempt struct {
	at    time.Time // when its task was first asked for
	state int
	id    int64
	done  chan struct{} // closed when it leaves attemptInFlight
}

func newDedup(window time.Duration) *dedup {
	return &dedup{window: window, m: map[dedupKey]*attempt{}}
}

// begin returns the attempt the request k takes part in: a lost answer's
// (claimed true: answer its id), or a new one (claimed false: create a
// task and set its id with created). It waits while another request for k
// is being answered. A nil attempt (dedup off, or ctx done) means: create a
// task and nothing else.
func (d *dedup) begin(ctx context.Context, k dedupKey) (a *attempt, claimed bool) {
	if d.window <= 0 {
		return nil, false
	}
	for {
		now := time.Now()
		d.mu.Lock()
		d.sweepLocked(now)
		a := d.m[k]
		if a != nil && a.state != attemptInFlight && now.Sub(a.at) >= d.window {
			a = nil
		}
		switch {
		case a != nil && a.state == attemptInFlight:
			ch := a.done
			d.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, false
			}
		case a != nil && a.state == attemptUndelivered:
			a.state, a.done = attemptInFlight, make(chan struct{})
			d.mu.Unlock()
			return a, true
		}
		a = &attempt{at: now, state: attemptInFlight, done: make(chan struct{})}
		d.m[k] = a
		d.mu.Unlock()
		return a, false
	}
}

// created records the id of a's task.
func (d *dedup) created(a *attempt, id int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a.id = id
}

// finish records how a's answer went: delivered to a client still
// connected, or not. An attempt without an id failed.
func (d *dedup) finish(a *attempt, delivered bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.state != attemptInFlight {
		return
	}
	switch {
	case a.id == 0:
		a.state = attemptFailed
	case delivered:
		a.state = attemptDelivered
	default:
		a.state = attemptUndelivered
	}
	close(a.done)
}

// sweepLocked forgets answered attempts older than the window, once per
// window.
func (d *dedup) sweepLocked(now time.Time) {
	if now.Sub(d.swept) < d.window {
		return
	}
	d.swept = now
	for k, a := range d.m {
		if a.state != attemptInFlight && now.Sub(a.at) >= d.window {
			delete(d.m, k)
		}
	}
}

// delivery carries a request's in.php attempt from Submit to the handler
// that writes its answer.
type delivery struct{ a *attempt }

type deliveryKey struct{}

func withDelivery(ctx context.Context, dl *delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, dl)
}

func deliveryOf(ctx context.Context) *delivery {
	dl, _ := ctx.Value(deliveryKey{}).(*delivery)
	return dl
}
