package engine

import (
	"sync"

	"github.com/captchafsm/captchafsm/persist"
)

// breaker is the account breaker: an account error opens it, every submit
// of the engine stops (tasks about to submit are parked), and a person's
// account-fixed closes it. In a fleet it follows the breaker the store
// shares. It owns its state behind its own lock.
type breaker struct {
	mu   sync.Mutex
	open bool
	code string // the code that opened it
	// fleetSawOpen: the fleet's breaker was seen open since this one
	// opened, so a closed fleet breaker means a person fixed it.
	fleetSawOpen bool
	changed      chan struct{} // closed (and replaced) when open flips
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// watch returns whether the breaker is open and a channel closed when
// that changes.
func (b *breaker) watch() (bool, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.open, b.changed
}

// setLocked sets open and wakes the watchers when it flips.
func (b *breaker) setLocked(open bool) {
	if b.open == open {
		return
	}
	b.open = open
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// openedBy is the code that opened the breaker ("" when closed or unknown).
func (b *breaker) openedBy() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.code
}

// trip opens the breaker for code; opened is true when it was closed.
func (b *breaker) trip(code string) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return false
	}
	b.setLocked(true)
	b.code, b.fleetSawOpen = code, false
	return true
}

// reset closes the breaker.
func (b *breaker) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setLocked(false)
	b.code, b.fleetSawOpen = "", false
}

// follow takes the fleet's conditions: it opens with the fleet's breaker,
// closes when the fleet's closes after it was seen open there (a person
// ran account-fixed somewhere), and never closes on the fleet's word
// otherwise. republish is the code to publish again when this breaker is
// open but the fleet's is not (its SetBreaker failed or lost a race).
func (b *breaker) follow(c persist.Conditions) (opened bool, republish string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	opened = c.BreakerOpen && !b.open
	switch {
	case c.BreakerOpen:
		b.setLocked(true)
		b.fleetSawOpen = true
		if opened {
			b.code = c.BreakerCode
		}
	case b.open && b.fleetSawOpen:
		b.setLocked(false)
		b.code, b.fleetSawOpen = "", false
	case b.open:
		republish = b.code
	}
	return opened, republish
}
