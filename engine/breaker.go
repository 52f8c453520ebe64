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
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// trip opens the breaker for code; opened is true when it was closed.
func (b *breaker) trip(code string) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return false
	}
	b.open, b.code, b.fleetSawOpen = true, code, false
	return true
}

// reset closes the breaker.
func (b *breaker) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open, b.code, b.fleetSawOpen = false, "", false
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
		b.open, b.fleetSawOpen = true, true
		if opened {
			b.code = c.BreakerCode
		}
	case b.open && b.fleetSawOpen:
		b.open, b.code, b.fleetSawOpen = false, "", false
	case b.open:
		republish = b.code
	}
	return opened, republish
}
