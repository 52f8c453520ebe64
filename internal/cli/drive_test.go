package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    map[states.State]int
		want int
	}{
		{map[states.State]int{}, ExitOK},
		{map[states.State]int{states.Done: 3}, ExitOK},
		{map[states.State]int{states.Done: 3, states.Failed: 1}, ExitFailed},
		{map[states.State]int{states.NeedsAccountFix: 1}, ExitNeedsAccountFix},
		{map[states.State]int{states.Failed: 5, states.NeedsAccountFix: 1}, ExitNeedsAccountFix},
	} {
		assert.Equal(t, tc.want, exitCode(tc.c), tc.c)
	}
}

func TestTrackerForgetsReleasedTasks(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	task := engine.Task{ID: "a", State: states.NeedsAccountFix}
	tr.hook(engine.Transition{Task: task, Record: persist.Record{From: states.Submitting, To: states.NeedsAccountFix, Event: transitions.AccountError}})
	tr.hook(engine.Transition{Task: task, Record: persist.Record{From: states.Submitting, To: states.NeedsAccountFix, Event: transitions.AccountError}})
	assert.Equal(t, map[states.State]int{states.NeedsAccountFix: 1}, tr.counts())
	assert.Len(t, tr.take(), 1, "reported once")
	released := engine.Task{ID: "a", State: states.Submitting}
	tr.hook(engine.Transition{Task: released, Record: persist.Record{From: states.NeedsAccountFix, To: states.Submitting, Event: transitions.AccountFixed}})
	assert.Empty(t, tr.counts())
	done := engine.Task{ID: "a", State: states.Done}
	tr.hook(engine.Transition{Task: done, Record: persist.Record{From: states.Polling, To: states.Done, Event: transitions.Solved}})
	assert.Equal(t, map[states.State]int{states.Done: 1}, tr.counts())
}

func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	var term bytes.Buffer
	con := &console{out: &term, prog: &term, bar: true, shared: true}
	c := map[states.State]int{states.Done: 5, states.Failed: 1}
	m := startMeter(con, 0, func() int { return 12 }, func() map[states.State]int { return c })
	con.result("a result line")
	m.end()
	out := term.String()
	assert.Contains(t, out, "\r\033[K[############............] 6/12 settled  done 5  failed 1  needs-fix 0")
	assert.Contains(t, out, "a result line\n")
	assert.True(t, strings.HasSuffix(out, "\n"), "the bar is left on its own line")
}

func TestProgressLinesOffATerminal(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	con := &console{out: &out, prog: &out}
	m := startMeter(con, 1<<40, func() int { return 2 }, func() map[states.State]int {
		return map[states.State]int{states.Done: 2}
	})
	m.end()
	m.end() // idempotent
	assert.Equal(t, 1, strings.Count(out.String(), "\n"))
	assert.Contains(t, out.String(), "2/2 settled  done 2")
	assert.NotContains(t, out.String(), "\r")
	assert.Contains(t, out.String(), "ETA 0s")
}
