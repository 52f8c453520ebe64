package engine

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Prices: with Config.FetchCost the engine records each solved task's
// price without asking res.php?action=get2 for every solve (a second
// request per solve, where batched polls carry no price). It learns a
// method's price from one get2, then reuses it, asking again every
// priceRecheckSolves solves of the method or priceRecheckAge, whichever
// comes first: a provider's prices change rarely, and then for a method
// at a time.
const (
	priceRecheckSolves = 250
	priceRecheckAge    = 15 * time.Minute
)

// prices holds each method's last known price. It owns its map behind its
// own lock.
type prices struct {
	mu       sync.Mutex
	m        map[string]*price
	learning map[string]chan struct{} // a look-up in flight, per method
}

type price struct {
	value  string    // as the provider reported it
	at     time.Time // when it was learnt
	solves int       // solves priced with it since
}

// known returns method's price when it is fresh at now, counting the solve
// it prices. When it is not, ask says whether the caller looks it up (and
// must call learn or forget); a caller that finds a look-up in flight
// waits for it.
func (p *prices) known(method string, now time.Time) (value string, fresh, ask bool) {
	for {
		p.mu.Lock()
		pr := p.m[method]
		if pr != nil && pr.solves < priceRecheckSolves && now.Sub(pr.at) < priceRecheckAge {
			pr.solves++
			p.mu.Unlock()
			return pr.value, true, false
		}
		wait, busy := p.learning[method]
		if !busy {
			if p.learning == nil {
				p.learning = map[string]chan struct{}{}
			}
			p.learning[method] = make(chan struct{})
			p.mu.Unlock()
			return "", false, true
		}
		p.mu.Unlock()
		<-wait
		if v := p.stale(method); v != "" {
			return v, true, false // the look-up it waited for failed: the last price stands
		}
	}
}

// forget ends a look-up of method that learnt nothing.
func (p *prices) forget(method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.learning[method]; ok {
		close(ch)
		delete(p.learning, method)
	}
}

// learn records method's price as of now.
func (p *prices) learn(method, value string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*price{}
	}
	p.m[method] = &price{value: value, at: now, solves: 1}
	if ch, ok := p.learning[method]; ok {
		close(ch)
		delete(p.learning, method)
	}
}

// stale returns method's last price, fresh or not ("" when never learnt).
func (p *prices) stale(method string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr := p.m[method]; pr != nil {
		return pr.value
	}
	return ""
}

// cost returns the price of a task of method that provider task pid
// solved, when Config.FetchCost is set; "" when unknown. A fresh learnt
// price costs no request; otherwise one get2 is sent, inside the request
// slots and the res.php budget (when the budget is spent, the last known
// price stands). A failure only loses the price, never the token.
func (e *Engine) cost(method, pid string) string {
	if e.coster == nil {
		return ""
	}
	v, fresh, ask := e.prices.known(method, time.Now())
	if fresh {
		return v
	}
	if !ask {
		return ""
	}
	var cost string
	err := e.resPHP(e.ctx, func(ctx context.Context) (err error) {
		_, cost, err = e.coster.Cost(ctx, pid)
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			e.log.Warn("cost not fetched", "provider_id", pid, "err", err)
		}
		e.prices.forget(method)
		return e.prices.stale(method)
	}
	e.prices.learn(method, cost, time.Now())
	return cost
}
