package crashtest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestUpgradeFinishesOldTasks: a database written by the schema-1 store,
// one written by the schema-2 store and one by the schema-3 store
// (persist/boltstore/testdata/schema1.db, schema2.db, schema3.db: a submit in
// flight, a possibly charged one, backoff, polling, resubmitting and
// parked tasks beside finished ones) is migrated when the new store opens
// it, and an engine on it finishes every task: the in-flight submit is
// recorded as possibly charged and sent again, the parked task keeps the
// breaker open until account-fixed. Then the CLI reads the file: every
// history replays.
func TestUpgradeFinishesOldTasks(t *testing.T) {
	for _, fixture := range []string{"schema1.db", "schema2.db", "schema3.db"} {
		t.Run(fixture, func(t *testing.T) { upgradeFinishesOldTasks(t, fixture) })
	}
}

func upgradeFinishesOldTasks(t *testing.T, fixture string) {
	b, err := os.ReadFile(filepath.Join("..", "..", "persist", "boltstore", "testdata", fixture))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "upgraded.db")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sim := providersim.New(providersim.Config{Seed: 3, Mix: providersim.NoErrors()})
		st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		before, err := st.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 30, total(before))
		intent, err := st.GetByRef(ctx, "intent")
		require.NoError(t, err)
		require.True(t, intent.Intent, "the migration marks the submit in flight")

		eng, err := engine.Open(ctx, engine.Config{Store: st, API: simClient(t, sim)})
		require.NoError(t, err)
		require.NoError(t, eng.Drain(ctx))
		// The parked task kept the breaker open (until the engine's own
		// probe of the account, or a person, closes it): release whatever
		// is still parked.
		_, err = eng.AccountFixed(ctx)
		require.NoError(t, err)
		require.NoError(t, eng.Drain(ctx))
		require.NoError(t, eng.Close())

		want := map[string]states.State{
			"fresh": states.Done, "intent": states.Done, "charged": states.Done, "backoff": states.Done,
			"resubmitting": states.Done, "parked": states.Done, "done-1": states.Done, "failed-1": states.Failed,
			// The simulator never issued the fixture's provider ids.
			"polling": states.Failed,
		}
		for ref, state := range want {
			task, err := st.GetByRef(ctx, ref)
			require.NoError(t, err)
			assert.Equal(t, state, task.State, ref)
		}
		tasks, err := st.List(ctx, persist.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tasks, 30)
		for _, task := range tasks {
			assert.True(t, task.State.Terminal(), "%s (%s) is %s", task.ID, task.Ref, task.State)
			hist, err := st.History(ctx, task.ID)
			require.NoError(t, err)
			got, err := fsm.Replay(hist)
			require.NoError(t, err, task.Ref)
			assert.Equal(t, task.State, got, task.Ref)
		}
		hist, err := st.History(ctx, intent.ID)
		require.NoError(t, err)
		assert.Equal(t, transitions.PossiblyCharged, hist[2].Event, "the submit in flight before the upgrade is named")
		assert.Empty(t, sim.Ledger().Bans)
		due, err := st.Due(ctx, persist.DueOptions{})
		require.NoError(t, err)
		assert.Empty(t, due)
		require.NoError(t, st.Close())
	})

	r := runCLI(t, nil, "replay", "--all", "--db", path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "30 tasks replayed: 30 OK, 0 MISMATCH")
	r = runCLI(t, nil, "list", "--json", "--db", path)
	require.Equal(t, 0, r.code, r.stderr)
	var list []engine.Task
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	assert.Len(t, list, 30)
	assert.False(t, strings.Contains(r.stdout, "secret"), "a proxy password in list --json")
}

func total(counts map[states.State]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
