package engine_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestRequestsBesideTheSolves: the balance, a task's price and a report go
// through the engine (its slots and res.php budget); a report is recorded
// in the task's history as an annotation, once.
func TestRequestsBesideTheSolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setupSim(t, providersim.Config{Seed: 4, Mix: providersim.NoErrors()}, engine.Policy{})
		ctx := context.Background()
		res, err := b.eng.Solve(ctx, mixed(2)[1])
		require.NoError(t, err)

		bal, err := b.eng.Balance(ctx)
		require.NoError(t, err)
		assert.NotEmpty(t, bal)
		price, err := b.eng.Price(ctx, res.ID)
		require.NoError(t, err)
		assert.Equal(t, mustFloat(t, price), b.sim.Ledger().Tasks[0].Cost)

		require.NoError(t, b.eng.Report(ctx, res.Ref, false))
		h, err := b.store.History(ctx, res.ID)
		require.NoError(t, err)
		last := h[len(h)-1]
		assert.Equal(t, transitions.Reported, last.Event)
		assert.Equal(t, states.Done, last.From)
		assert.Equal(t, states.Done, last.To)
		assert.Contains(t, last.Detail, "reportbad")
		got, err := fsm.Replay(h)
		require.NoError(t, err, "a report's record replays")
		assert.Equal(t, states.Done, got)
		assert.Equal(t, "bad", b.sim.Ledger().Tasks[0].Report)
		assert.ErrorIs(t, b.eng.Report(ctx, res.ID, true), engine.ErrReported)

		id, err := b.eng.Submit(ctx, mixed(3)[2])
		require.NoError(t, err)
		assert.ErrorIs(t, b.eng.Report(ctx, id, true), engine.ErrNotReportable, "nothing to report before the answer")

		// The budget of the hour (90 % of 20 × captchas + 1,200) ends the
		// look-ups before the provider would ban.
		n := 0
		for ; n < 2000; n++ {
			if _, err := b.eng.Balance(ctx); err != nil {
				require.True(t, errors.Is(err, engine.ErrBudgetSpent), "%v", err)
				break
			}
		}
		assert.Less(t, n, 1200)
		assert.Empty(t, b.sim.Ledger().Bans)
	})
}
