package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestWrongKeyAtRestartKeepsPaidTasks: tasks the provider accepted (paid)
// under the right key, then polled by a restart with a key it refuses
// (a typo in CAPTCHAFSM_API_KEY), are not failed: the code is about the
// key, not the task. They park with the breaker open, as on an account
// code from res.php, and once released (submitted again, as every parked
// task is) the right key gets them solved; before, one res.php failed
// every paid task for good.
func TestWrongKeyAtRestartKeepsPaidTasks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Seed: 1, Key: simKey, Mix: providersim.NoErrors(),
			SolveTime: map[string]providersim.Dist{"base64": {Min: 2 * time.Minute, Max: 2 * time.Minute}}})
		defer sim.Close()
		client := func(key string) *provider.Client {
			c, err := provider.New(provider.Config{BaseURL: "http://sim.invalid", Key: key, HTTPClient: sim.Client()})
			require.NoError(t, err)
			return c
		}
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "key.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		ctx := context.Background()

		eng, err := engine.Open(ctx, engine.Config{Store: st, API: client(simKey)})
		require.NoError(t, err)
		moves, stop := eng.Subscribe(64)
		const n = 5
		reqs := make([]engine.Request, n)
		for i := range reqs {
			reqs[i] = engine.Request{Method: "base64", Params: map[string]string{"body": pngBase64(200)}}
		}
		_, _, err = eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)
		for accepted := 0; accepted < n; {
			if tr := <-moves; tr.Record.Event == transitions.SubmitAccepted {
				accepted++
			}
		}
		stop()
		require.NoError(t, eng.Close())
		paid := sim.Ledger().Requests[providersim.KindSubmit]
		require.Equal(t, n, paid)

		eng, err = engine.Open(ctx, engine.Config{Store: st, API: client(strings.Repeat("0f", 16))})
		require.NoError(t, err)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		require.NoError(t, eng.Drain(dctx))
		cancel()
		require.NoError(t, eng.Close())
		counts, err := st.Count(ctx)
		require.NoError(t, err)
		assert.Zero(t, counts[states.Failed], "a paid task failed on the key's code: %v", counts)
		assert.Equal(t, n, counts[states.NeedsAccountFix], "%v", counts)

		eng, err = engine.Open(ctx, engine.Config{Store: st, API: client(simKey)})
		require.NoError(t, err)
		defer eng.Close()
		_, err = eng.AccountFixed(ctx)
		require.NoError(t, err)
		require.NoError(t, eng.Drain(ctx))
		counts, err = st.Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[states.State]int{states.Done: n}, counts)
		tasks, err := st.List(ctx, persist.ListOptions{})
		require.NoError(t, err)
		for _, task := range tasks {
			assert.NotEmpty(t, task.Token, task.ID)
		}
	})
}
