package engine_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
)

// threadsAPI is a provider that sells a plan of threads: a submit while
// threads tasks are open (accepted, not yet answered) gets
// ERROR_ZERO_BALANCE, as CaptchaAI answers it. Each task answers
// CAPCHA_NOT_READY twice, then its token.
type threadsAPI struct {
	threads int

	mu       sync.Mutex
	next     int
	open     map[string]int // provider id → polls so far
	maxOpen  int
	refusals int
}

func (a *threadsAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.open) >= a.threads {
		a.refusals++
		return "", apiErr("in.php", "ERROR_ZERO_BALANCE")
	}
	a.next++
	id := strconv.Itoa(a.next)
	a.open[id] = 0
	a.maxOpen = max(a.maxOpen, len(a.open))
	return id, nil
}

func (a *threadsAPI) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]provider.Answer, len(ids))
	for i, id := range ids {
		if a.open[id] < 2 {
			a.open[id]++
			out[i] = provider.Answer{Code: "CAPCHA_NOT_READY", Class: "not_ready"}
			continue
		}
		delete(a.open, id)
		out[i] = provider.Answer{Token: "token-" + id}
	}
	return out, nil
}

// TestMaxInFlight: with max_in_flight set to the plan's threads, a batch
// never meets the plan's ERROR_ZERO_BALANCE and every task is solved;
// without it the same batch trips the breaker (issue 11, point 5).
func TestMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int
		refusals bool
	}{
		{"bounded to the plan", 20, false},
		{"unbounded", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, engine.Policy{})
				api := &threadsAPI{threads: 20, open: map[string]int{}}
				eng := b.reopenWith(engine.Config{Store: b.store, API: api,
					Policy: engine.Policy{MaxInFlight: tc.max, Concurrency: 50}})
				ctx := context.Background()
				reqs := make([]engine.Request, 2000)
				for i := range reqs {
					reqs[i] = recaptcha("")
				}
				ids, _, err := eng.SubmitMany(ctx, reqs)
				require.NoError(t, err)
				require.NoError(t, eng.Drain(ctx))
				api.mu.Lock()
				refusals, maxOpen := api.refusals, api.maxOpen
				api.mu.Unlock()
				if !tc.refusals {
					assert.Zero(t, refusals, "the plan's limit was never met")
					assert.LessOrEqual(t, maxOpen, tc.max)
					assert.False(t, eng.BreakerOpen())
					for _, id := range ids {
						res, err := eng.Wait(ctx, id)
						require.NoError(t, err)
						require.Equal(t, states.Done, res.State)
					}
					return
				}
				assert.Positive(t, refusals, "without the bound the plan refuses")
				assert.True(t, eng.BreakerOpen())
			})
		})
	}
}
