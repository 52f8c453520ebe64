package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/states"
)

func TestParseAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"720h", 720 * time.Hour, ""},
		{"0s", 0, "must be positive"},
		{"-5h", 0, "must be positive"},
		{"soon", 0, "want a duration"},
		{"3dd", 0, "want a duration"},
		{"", 0, "must be positive"},
	} {
		got, err := parseAge(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(3)
	w.crashedTasks(1, nil)

	r := w.run("prune", "--older-than", "30d")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "pruned 0 terminal tasks")
	assert.Len(t, w.tasks(), 4)

	// Everything finished before now is old enough for 1ns; the task in
	// flight stays.
	r = w.run("prune", "--older-than", "1ns", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &res))
	assert.EqualValues(t, 3, res["pruned"])
	left := w.tasks()
	require.Len(t, left, 1)
	assert.Equal(t, states.Submitting, left[0].State)

	r = w.run("prune", "--older-than", "soon")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `--older-than "soon": want a duration`)
	r = w.run("prune")
	assert.Contains(t, r.err, "--older-than DURATION is required")
}
