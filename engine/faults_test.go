package engine_test

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestFaultyProviderUnderLoad: every transport fault of the simulator, at
// random on submits and polls, under a batch of 400 tasks. Nothing panics,
// every task ends (or is parked) within its policy's limits, and every task
// the simulator charged is known to the database or named possibly charged
// in a history.
func TestFaultyProviderUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		faults := providersim.FaultRates{HTTP500: 0.04, HTML502: 0.04, Drop: 0.03, Slow: 0.02, SlowDelay: 45 * time.Second}
		b := setupSim(t, providersim.Config{Seed: 11, Faults: providersim.Faults{Submit: faults, Poll: faults}},
			engine.Policy{})
		ctx := context.Background()
		ids, _, err := b.eng.SubmitMany(ctx, mixed(400))
		require.NoError(t, err)
		require.NoError(t, b.eng.Drain(ctx))
		if b.eng.BreakerOpen() {
			_, err := b.eng.AccountFixed(ctx)
			require.NoError(t, err)
			require.NoError(t, b.eng.Drain(ctx))
		}
		pol := engine.DefaultPolicy()
		// The longest legal life: every submit backs off to the cap and
		// times out, every provider task runs to the poll timeout.
		perSubmit := time.Duration(pol.MaxRetries+1) * (pol.BackoffMax + pol.RequestTimeout)
		limit := time.Duration(pol.MaxResubmits+1) * (perSubmit + pol.PollTimeout + pol.RequestTimeout + pol.PollInterval)
		known := map[string]bool{}
		possiblyCharged, done := 0, 0
		for _, id := range ids {
			tk, err := b.store.Get(ctx, id)
			require.NoError(t, err)
			require.True(t, tk.State.Terminal(), "task %s stuck in %s", id, tk.State)
			if tk.State == states.Done {
				done++
			}
			assert.LessOrEqual(t, tk.Updated.Sub(tk.Created), limit, "task %s ran past its policy's limits", id)
			h, err := b.store.History(ctx, id)
			require.NoError(t, err)
			for _, r := range h {
				if r.ProviderID != "" {
					known[r.ProviderID] = true
				}
				if r.PossiblyCharged {
					possiblyCharged++
				}
			}
			assert.Equal(t, tk.Submits, countEvents(h, transitions.SubmitSending), "every in.php request is in history")
		}
		led := b.sim.Ledger()
		unknown := 0
		for _, tr := range led.Tasks {
			if !known[strconv.FormatInt(tr.ID, 10)] {
				unknown++
			}
		}
		assert.LessOrEqual(t, unknown, possiblyCharged, "a charged task unknown to the db is named possibly charged")
		assert.Positive(t, len(led.Faults), "faults were injected")
		assert.Greater(t, done, 300)
		t.Logf("done %d/%d, charged %d, unknown to db %d, possibly charged records %d, faults %v",
			done, len(ids), led.Charged(), unknown, possiblyCharged, led.Faults)
	})
}

func countEvents(h []persist.Record, ev transitions.Event) int {
	n := 0
	for _, r := range h {
		if r.Event == ev {
			n++
		}
	}
	return n
}
