package engine_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestHalfOpenBreaker: after ERROR_ZERO_BALANCE the breaker probes the
// account with getbalance every account_probe_interval; an automatic
// top-up releases the parked tasks without a person, each history saying
// account_fixed with the probe as its detail. With probing off the tasks
// stay parked (issue 11, point 4).
func TestHalfOpenBreaker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		released bool
	}{
		{"probing every 60s", 0, true},
		{"probing every 10s", 10 * time.Second, true},
		{"probing off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setupSim(t, providersim.Config{Seed: 1, Mix: providersim.NoErrors()},
					engine.Policy{AccountProbeInterval: tc.interval})
				b.sim.SetBalance(0)
				ctx := context.Background()
				start := time.Now()
				ids, _, err := b.eng.SubmitMany(ctx, mixed(100))
				require.NoError(t, err)
				require.NoError(t, b.eng.Drain(ctx))
				require.True(t, b.eng.BreakerOpen())

				// An automatic top-up, 95 s after the empty balance.
				<-time.After(95*time.Second - time.Since(start))
				b.sim.SetBalance(100)
				<-time.After(5 * time.Minute)
				synctest.Wait()
				if !tc.released {
					assert.True(t, b.eng.BreakerOpen())
					assert.Zero(t, b.eng.Stats().AccountProbes)
					counts, err := b.store.Count(ctx)
					require.NoError(t, err)
					assert.Equal(t, 100, counts[states.NeedsAccountFix])
					return
				}
				require.NoError(t, b.eng.Drain(ctx))
				assert.False(t, b.eng.BreakerOpen())
				probes := b.eng.Stats().AccountProbes
				interval := tc.interval
				if interval == 0 {
					interval = time.Minute
				}
				assert.Equal(t, int64(95*time.Second/interval)+1, probes, "one probe per interval until the top-up")
				for _, id := range ids {
					res, err := b.eng.Wait(ctx, id)
					require.NoError(t, err)
					require.Equal(t, states.Done, res.State)
					h, err := b.store.History(ctx, id)
					require.NoError(t, err)
					var fixed []string
					for _, r := range h {
						if r.Event == transitions.AccountFixed {
							fixed = append(fixed, r.Detail)
						}
					}
					require.Len(t, fixed, 1, "task %s", id)
					assert.True(t, strings.HasPrefix(fixed[0], "getbalance probe: balance 100"), fixed[0])
					assert.Contains(t, fixed[0], "ERROR_ZERO_BALANCE")
				}
			})
		})
	}
}
