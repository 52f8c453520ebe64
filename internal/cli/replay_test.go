package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestReplay(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(3)
	ids := w.crashedTasks(1, nil)

	r := w.run("replay", "--all")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, 4, strings.Count(r.out, "OK        "))
	assert.Contains(t, r.out, "4 tasks replayed: 4 OK, 0 MISMATCH")

	r = w.run("replay", ids[0])
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "OK        "+ids[0]+"  Submitting (2 records)")

	// A history the machine refuses: Submitting cannot be solved.
	s := w.store()
	task, err := s.Get(context.Background(), ids[0])
	require.NoError(t, err)
	next := task.Clone()
	next.State = states.Done
	next.Params = nil
	require.NoError(t, s.Apply(context.Background(), next, &persist.Record{At: time.Now(), From: states.Submitting,
		Event: transitions.Solved, To: states.Done}))
	require.NoError(t, s.Close())

	r = w.run("replay", "--all")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.out, "MISMATCH  "+ids[0]+"  stored Done")
	assert.Contains(t, r.out, "4 tasks replayed: 3 OK, 1 MISMATCH")

	r = w.run("replay", "--all", "--json")
	assert.Equal(t, ExitFailed, r.code)
	var verdicts []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &verdicts))
	require.Len(t, verdicts, 4)
	bad := 0
	for _, v := range verdicts {
		if v["ok"] == false {
			bad++
			assert.Equal(t, ids[0], v["id"])
			assert.NotEmpty(t, v["error"])
		}
	}
	assert.Equal(t, 1, bad)
}

func TestReplayUsage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(1)
	for _, args := range [][]string{{"replay"}, {"replay", "a", "--all"}, {"replay", "a", "b"}} {
		r := w.run(args...)
		assert.Equal(t, ExitUsage, r.code, args)
		assert.Contains(t, r.err, "replay: ", args)
	}
}
