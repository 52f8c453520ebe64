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
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// crashedTasks writes n tasks as an engine killed mid-submit leaves them:
// each history ends with the intent to send in.php. It returns their ids.
func (w *world) crashedTasks(n int, params map[string]string) []string {
	w.t.Helper()
	s := w.store()
	defer s.Close()
	ctx := context.Background()
	var ids []string
	for i := range n {
		now := time.Now()
		p := map[string]string{"sitekey": "k", "pageurl": "https://a.example/" + string(rune('a'+i))}
		for k, v := range params {
			p[k] = v
		}
		t := &persist.Task{ID: persist.NewID(), Method: "hcaptcha", Params: p, State: states.Submitting,
			Created: now, Updated: now, NextAt: now}
		require.NoError(w.t, s.Create(ctx, t))
		next := t.Clone()
		next.Seq = 1
		next.Submits = 1
		next.Params = nil
		require.NoError(w.t, s.Apply(ctx, next, &persist.Record{At: now, From: states.Submitting,
			Event: transitions.SubmitSending, To: states.Submitting}))
		ids = append(ids, t.ID)
	}
	return ids
}

func TestResumeAfterCrashMarksPossiblyCharged(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	ids := w.crashedTasks(3, map[string]string{"proxy": "bob:hunter2@10.0.0.1:3128", "proxytype": "HTTP"})

	// Before the resume, history says the submit is in the air.
	r := w.run("history", ids[0])
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "sent, no answer recorded: possibly charged")
	assert.Contains(t, r.out, "! 1 submit(s) possibly charged")

	r = w.run(withPolicy(w, "resume", "--json")...)
	require.Equal(t, ExitOK, r.code, r.err)
	lines := decodeLines(t, r.out)
	require.Len(t, lines, 3)
	for _, l := range lines {
		assert.Equal(t, "Done", l["state"])
		assert.EqualValues(t, 2, l["submits"], "the crashed submit counts, then the new one")
	}

	// After it, the possibly-charged submit is on record, marked.
	r = w.run("history", ids[0])
	require.Equal(t, ExitOK, r.code, r.err)
	var marked []string
	for _, line := range strings.Split(r.out, "\n") {
		if strings.Contains(line, " ! ") && !strings.HasPrefix(line, "SEQ") {
			marked = append(marked, line)
		}
	}
	require.Len(t, marked, 1, r.out)
	assert.Contains(t, marked[0], "possibly_charged")
	assert.Contains(t, marked[0], "may have charged")
	assert.Contains(t, r.out, "proxy=***:***@10.0.0.1:3128")
	assert.NotContains(t, r.out, "hunter2")

	r = w.run("history", ids[0], "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var h struct {
		Task    map[string]any   `json:"task"`
		History []map[string]any `json:"history"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.out), &h))
	assert.EqualValues(t, 1, h.Task["possibly_charged"])
	assert.Equal(t, "Done", h.Task["state"])
	assert.NotContains(t, r.out, "hunter2")
	charged := 0
	for _, rec := range h.History {
		for _, k := range []string{"seq", "at", "from", "to", "event", "code", "detail", "provider_id", "possibly_charged"} {
			assert.Contains(t, rec, k)
		}
		if rec["possibly_charged"] == true {
			charged++
			assert.Equal(t, string(transitions.PossiblyCharged), rec["event"])
		}
	}
	assert.Equal(t, 1, charged)

	// Nothing is left to resume.
	r = w.run(withPolicy(w, "resume")...)
	assert.Equal(t, ExitOK, r.code)
	assert.Contains(t, r.err, "nothing to resume")
}

// TestAccountFixedThenResume: the account runs dry (the simulator's
// balance is 0), run parks its tasks and exits 3, and resume cannot help
// while the account is empty (one free getbalance says so). A person's
// account-fixed releases them.
func TestAccountFixedThenResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	w.sim.Sim.SetBalance(0)
	r := w.run(withPolicy(w, "run", "--from", w.file("t.jsonl", taskLines(4, "a")))...)
	require.Equal(t, ExitNeedsAccountFix, r.code, r.err)
	assert.Contains(t, r.err, "captchafsm account-fixed")

	// Resume alone cannot help while the account is empty.
	r = w.run(withPolicy(w, "resume", "--json")...)
	assert.Equal(t, ExitNeedsAccountFix, r.code, r.err)
	assert.Contains(t, r.err, "4 tasks wait in NeedsAccountFix")
	assert.Contains(t, r.err, "getbalance: 0")
	assert.Len(t, decodeLines(t, r.out), 4)

	w.sim.Sim.SetBalance(100) // the top-up
	r = w.run("account-fixed")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "released 4 tasks")
	r = w.run("account-fixed", "--json")
	assert.JSONEq(t, `{"released": 0}`, r.out)

	r = w.run(withPolicy(w, "resume")...)
	require.Equal(t, ExitOK, r.code, r.err)
	for _, task := range w.tasks() {
		assert.Equal(t, states.Done, task.State)
	}
}

// TestResumeAfterATopUp: an unattended bot's account was topped up
// automatically while its tasks waited in NeedsAccountFix. resume checks
// the account once with a free getbalance before it gives up on them:
// usable, the tasks are released (history: account_fixed, the probe as
// its detail) and solved, and resume exits 0 with no person's
// account-fixed. With account_probe_interval "0s" (probing off) only a
// person releases them (issue 11, point 4: the half-open breaker, as the
// CLI meets it; run and resume end as soon as every task is parked, before
// the engine's own probe would fire).
func TestResumeAfterATopUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		probing bool
	}{{"probing", true}, {"probing off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
			if !tc.probing {
				w.policy = w.file("policy-noprobe.json", strings.TrimSuffix(fastPolicy, "}")+`, "account_probe_interval": "0s"}`)
			}
			w.sim.Sim.SetBalance(0)
			r := w.run(withPolicy(w, "run", "--from", w.file("t.jsonl", taskLines(4, "a")))...)
			require.Equal(t, ExitNeedsAccountFix, r.code, r.err)

			w.sim.Sim.SetBalance(100) // an automatic top-up; nobody runs account-fixed
			r = w.run(withPolicy(w, "resume", "--json")...)
			if !tc.probing {
				assert.Equal(t, ExitNeedsAccountFix, r.code, r.err)
				assert.Contains(t, r.err, "4 tasks wait in NeedsAccountFix")
				return
			}
			require.Equal(t, ExitOK, r.code, r.err)
			assert.Contains(t, r.err, "released 4 tasks")
			assert.Len(t, decodeLines(t, r.out), 4, "the released tasks are resume's to report")
			for _, task := range w.tasks() {
				assert.Equal(t, states.Done, task.State)
				h := w.run("history", task.ID, "--json")
				require.Equal(t, ExitOK, h.code, h.err)
				assert.Contains(t, h.out, `"event": "account_fixed"`)
				assert.Contains(t, h.out, "getbalance")
			}
		})
	}
}

func TestAccountFixedNeedsADatabase(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.run("account-fixed")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "no such file")
}

// TestWrongKeyParksTheBatch: run with a key the provider does not know
// fails the tasks whose in.php it answered and parks the rest, naming the
// code and the fix (the key), without earning the provider's IP ban for
// repeated bad keys; resume with the right key solves the parked tasks.
func TestWrongKeyParksTheBatch(t *testing.T) {
	t.Parallel()
	right := strings.Repeat("ab", 16)
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors(), Key: right})
	r := w.run(withPolicy(w, "run", "--from", w.file("t.jsonl", taskLines(40, "k")))...)
	require.Equal(t, ExitNeedsAccountFix, r.code, r.err)
	assert.Contains(t, r.err, "submits stopped on ERROR_KEY_DOES_NOT_EXIST")
	assert.Contains(t, r.err, "fix the API key (CAPTCHAFSM_API_KEY or --key-file), then `captchafsm resume`")
	led := w.sim.Sim.Ledger()
	assert.LessOrEqual(t, led.Requests[providersim.KindSubmit], 3, "the first refusal stops the submits")
	assert.Empty(t, led.Bans, "no IP ban")

	w.env[EnvAPIKey] = right
	r = w.run(withPolicy(w, "resume")...)
	require.Equal(t, ExitOK, r.code, r.err) // resume answers for the tasks it released
	done := 0
	for _, task := range w.tasks() {
		if task.State == states.Done {
			done++
		}
	}
	assert.Equal(t, 40-led.Requests[providersim.KindSubmit], done)
}
