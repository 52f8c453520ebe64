package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
)

func TestDemoText(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	db := filepath.Join(w.dir, "demo.db")
	r := w.run("demo", "--tasks", "20", "--speed", "200", "--db", db, "--progress-every", "50ms")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "captchafsm demo: 20 tasks")
	assert.Regexp(t, `\d+/20 settled  done \d+`, r.out, "progress lines off a terminal")
	assert.Contains(t, r.out, "SUMMARY")
	for _, row := range []string{"tasks", "Done", "Failed", "NeedsAccountFix", "requests sent", "retries", "resubmits",
		"tasks charged", "possibly charged", "provider bans", "replay"} {
		assert.Regexp(t, `(?m)^\s+`+row+`\s`, r.out)
	}
	assert.Contains(t, r.out, "replay                 20/20")
	assert.Contains(t, r.out, " replay --all --db "+db)
	assert.NotContains(t, r.out, "temporary directory", "a --db database is the user's")

	// The printed command works.
	m := regexp.MustCompile(`Inspect one task: +\S+ history (\S+) --db (\S+)`).FindStringSubmatch(r.out)
	require.Len(t, m, 3)
	h := w.run("history", m[1], "--db", m[2])
	require.Equal(t, ExitOK, h.code, h.err)
	assert.Contains(t, h.out, "[*] → Submitting")
	rp := w.run("replay", "--all", "--db", db)
	assert.Equal(t, ExitOK, rp.code)

	// The demo wants a fresh database.
	again := w.run("demo", "--tasks", "2", "--db", db)
	assert.Equal(t, ExitUsage, again.code)
	assert.Contains(t, again.err, "--db "+db+": the file exists")
}

func TestDemoJSONAndCrash(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	db := filepath.Join(w.dir, "crash.db")
	r := w.run("demo", "--tasks", "20", "--speed", "50", "--crash", "--db", db, "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var s demoSummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), r.out)
	assert.Equal(t, 20, s.Tasks)
	total := 0
	for _, n := range s.States {
		total += n
	}
	assert.Equal(t, 20, total)
	assert.Zero(t, s.States["NeedsAccountFix"]+s.States["Submitting"]+s.States["Polling"]+s.States["Backoff"])
	assert.Equal(t, 20, s.ReplayOK)
	assert.GreaterOrEqual(t, s.InPHP, 20)
	assert.GreaterOrEqual(t, s.Charged, s.States["Done"])
	require.NotNil(t, s.Crash)
	assert.True(t, s.Crash.Killed, "the child engine was killed mid-batch")
	assert.Positive(t, s.Crash.InFlight)
	assert.Equal(t, s.Crash.InFlight, s.Crash.Finished, "every task in flight at the kill finished")
	assert.GreaterOrEqual(t, s.Crash.SettledAtKill, 8)
	assert.Equal(t, db, s.DB)
	assert.Equal(t, s.PossiblyCharge, countPossiblyCharged(t, w, db))
}

func countPossiblyCharged(t *testing.T, w *world, db string) int {
	t.Helper()
	r := w.run("list", "--db", db, "--json")
	require.Equal(t, ExitOK, r.code)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &list))
	n := 0
	for _, task := range list {
		h := w.run("history", task["id"].(string), "--db", db, "--json")
		n += strings.Count(h.out, `"possibly_charged": true`)
	}
	return n
}

func TestDemoBadFlags(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--tasks", "0"}, "--tasks 0: want 1 to 100000"},
		{[]string{"demo", "--speed", "0.5"}, "--speed 0.5: want 1 to 1000"},
	} {
		r := w.run(tc.args...)
		assert.Equal(t, ExitUsage, r.code)
		assert.Contains(t, r.err, tc.want)
	}
}

func TestDemoTasksAndPolicy(t *testing.T) {
	t.Parallel()
	reqs := demoTasks(200, 1)
	assert.Equal(t, reqs, demoTasks(200, 1), "the same seed, the same tasks")
	methods := map[string]int{}
	bodies := map[string]bool{}
	for _, r := range reqs {
		require.NoError(t, provider.Validate(provider.Request{Method: r.Method, Params: r.Params}), r.Ref)
		methods[r.Method]++
		if b := r.Params["body"]; b != "" {
			assert.False(t, bodies[b], "every image differs")
			bodies[b] = true
		}
	}
	assert.Len(t, methods, 4)

	p := demoPolicy(20)
	require.NoError(t, p.Validate())
	d := engine.DefaultPolicy()
	assert.Equal(t, d.PollInterval/20, p.PollInterval)
	assert.Equal(t, d.FirstPollDelayToken/20, p.FirstPollDelayToken)
	assert.Equal(t, d.SubmitRate, p.SubmitRate, "the provider's submit limit runs on the real clock")
	b, err := policyFile(p)
	require.NoError(t, err)
	back, err := engine.ParsePolicy(b)
	require.NoError(t, err)
	assert.Equal(t, p, back, "the child engine gets the same policy")
}
