package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
)

// BalanceAPI is implemented by APIs that can tell the account's balance
// (res.php?action=getbalance, a free request). *provider.Client does. With
// it, an open account breaker probes the account and closes itself once
// the account is usable again (Policy.AccountProbeInterval).
type BalanceAPI interface {
	Balance(ctx context.Context) (string, error)
}

var _ BalanceAPI = (*provider.Client)(nil)

// probeLoop is the half-open breaker: while the breaker is open it asks the
// provider for the balance every AccountProbeInterval, and when the
// account is usable (a positive balance, no account error) it releases
// the parked tasks itself. A ban in force is waited out first.
func (e *Engine) probeLoop(api BalanceAPI) {
	defer e.wg.Done()
	for {
		open, flipped := e.brk.watch()
		if !open {
			select {
			case <-flipped:
				continue
			case <-e.done:
				return
			}
		}
		timer := time.NewTimer(e.pol.AccountProbeInterval)
		select {
		case <-timer.C:
			if !e.probe(api) {
				return // the API cannot tell the balance
			}
		case <-flipped:
			timer.Stop()
		case <-e.done:
			timer.Stop()
			return
		}
	}
}

// probe asks for the balance once and releases the parked tasks when the
// account is usable. It reports false when the API cannot tell the balance
// (ErrUnsupported): probing is over.
func (e *Engine) probe(api BalanceAPI) bool {
	now := time.Now()
	if _, polls := e.lim.pauses(); now.Before(polls) {
		return true // a ban in force: waited out, then probed
	}
	if c, ok := e.store.(persist.ProbeClaimer); ok && e.fleet != nil {
		mine, err := c.ClaimProbe(e.ctx, e.fleet.owner, e.pol.AccountProbeInterval)
		if err != nil {
			e.log.Error("claim the account probe", "err", err)
			return true
		}
		if !mine {
			return true // another engine of the fleet probes
		}
	}
	var balance string
	err := e.resPHP(e.ctx, func(ctx context.Context) (err error) {
		balance, err = api.Balance(ctx)
		return err
	})
	switch {
	case errors.Is(err, ErrUnsupported):
		return false
	case errors.Is(err, ErrBudgetSpent):
		return true
	}
	e.stats.probes.Add(1)
	opened := e.brk.openedBy()
	if err != nil {
		var apiErr *provider.APIError
		if errors.As(err, &apiErr) {
			e.log.Warn("account probe: not usable yet", "code", apiErr.Code, "opened_by", opened)
		} else {
			e.log.Warn("account probe failed", "err", err)
		}
		return true
	}
	if v, err := strconv.ParseFloat(balance, 64); err != nil || v <= 0 {
		e.log.Warn("account probe: no funds yet", "balance", balance, "opened_by", opened)
		return true
	}
	detail := fmt.Sprintf("getbalance probe: balance %s", balance)
	if opened != "" {
		detail += fmt.Sprintf(" (breaker opened by %s)", opened)
	}
	n, err := e.releaseProbed(detail)
	e.log.Info("account usable again: parked tasks released", "released", n, "balance", balance, "err", err)
	return true
}

// releaseProbed closes the breaker and releases the parked tasks, noting
// the probe in each history: the engine's own in a lone engine, the
// store's in a fleet.
func (e *Engine) releaseProbed(detail string) (int, error) {
	if e.fleet == nil {
		return e.releaseParked(e.ctx, detail)
	}
	e.brk.reset()
	return releaseAccountFix(e.ctx, e.store, detail)
}
