package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"login-42 é 漢字 🙂", "login-42 é 漢字 🙂"},
		{`C:\path\n`, `C:\path\n`}, // backslashes typed by the user stay
		{"\x1b]0;pwned\a", `\x1b]0;pwned\a`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"two\nlines\r\ttab", `two\nlines\r\ttab`},
		{"nul\x00byte\x7f", `nul\x00byte\x7f`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"\u202egnp.exe", `\u202egnp.exe`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
	} {
		assert.Equal(t, tc.want, printable(tc.in), "%q", tc.in)
	}
}

// assertTerminalSafe fails when out holds a character that can act on a
// terminal; tabs and newlines are allowed as the output's own structure.
func assertTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "%s: not UTF-8: %q", what, out)
	for _, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		if mustEscape(r, utf8.RuneLen(r)) {
			t.Fatalf("%s: a raw %U reaches the terminal: %q", what, r, out)
		}
	}
}

// hostileRefs are refs that would act on a terminal printed raw: retitle
// it, recolour it, forge a result line or a column, reverse the text.
var hostileRefs = []string{"\x1b]0;pwned\a", "\x1b[31mred", "two\nlines\tcolumn", "\u202egnp.exe"}

// TestRunAndListEscapeRefs: run's and list's human output show hostile
// refs escaped: one line per task, four (run) or nine (list) columns.
// --json keeps the refs as they are.
func TestRunAndListEscapeRefs(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	var b strings.Builder
	for i, ref := range hostileRefs {
		q, err := json.Marshal(ref)
		require.NoError(t, err)
		b.WriteString(`{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example/` + string(rune('a'+i)) + `"},"ref":` + string(q) + "}\n")
	}
	file := w.file("t.jsonl", b.String())
	r := w.run(withPolicy(w, "run", "--from", file)...)
	require.Equal(t, ExitOK, r.code, r.err)
	assertTerminalSafe(t, "run", r.out)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	require.Len(t, lines, len(hostileRefs), "one result line per task: %q", r.out)
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		require.Len(t, f, 4, "%q", l)
		seen[f[1]] = true
	}
	for _, ref := range hostileRefs {
		assert.True(t, seen[printable(ref)], "ref %q shown as %q", ref, printable(ref))
	}

	r = w.run("list")
	require.Equal(t, ExitOK, r.code, r.err)
	assertTerminalSafe(t, "list", r.out)
	assert.Len(t, strings.Split(strings.TrimSuffix(r.out, "\n"), "\n"), 1+len(hostileRefs))
	assert.Contains(t, r.out, `\x1b]0;pwned\a`)
	assert.Contains(t, r.out, `two\nlines\tcolumn`)

	r = w.run("list", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.NotContains(t, r.out, "\x1b", "JSON escapes control characters itself")
	assert.Contains(t, r.out, `"ref": "\u001b]0;pwned\u0007"`, "JSON keeps the ref as it is, in JSON's escapes")

	// Text from the command line echoed in an error is escaped too.
	r = w.run("run", "--from", w.dir+"/\x1b[31mnone.jsonl")
	assert.Equal(t, ExitUsage, r.code)
	assert.Equal(t, "captchafsm: --from "+w.dir+"/\\x1b[31mnone.jsonl: no such file\n", r.err)
}

// TestStoredTextIsEscaped: whatever a database holds (written by an older
// captchafsm, another program through the library, or a provider's
// answer), list, history and replay show it escaped: a NUL in a ref, an
// escape sequence in a code, a C1 control and an override in a token, a
// newline in a detail, a tab in a parameter.
func TestStoredTextIsEscaped(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.store()
	ctx := context.Background()
	now := time.Now()
	task := &persist.Task{ID: persist.NewID(), Ref: "nul\x00ref", Method: "hcaptcha",
		Params: map[string]string{"sitekey": "k\tk", "pageurl": "https://a.example/\x1b[2J"},
		State:  states.Submitting, Created: now, Updated: now, NextAt: now}
	require.NoError(t, s.Create(ctx, task))
	next := task.Clone()
	next.Params = nil
	next.State, next.Code = states.Failed, "ERROR_\x1b[2J"
	require.NoError(t, s.Apply(ctx, next, &persist.Record{At: now, From: states.Submitting, Event: transitions.UnknownError,
		To: states.Failed, Code: next.Code, Detail: "first line\nFORGED 1 Done\x1b]0;t\a"}))
	done := &persist.Task{ID: persist.NewID(), Ref: "tok", Method: "hcaptcha", Params: map[string]string{"sitekey": "k", "pageurl": "https://a.example"},
		State: states.Submitting, Created: now, Updated: now, NextAt: now}
	require.NoError(t, s.Create(ctx, done))
	moves := []struct {
		ev transitions.Event
		to states.State
	}{{transitions.SubmitSending, states.Submitting}, {transitions.SubmitAccepted, states.Polling}, {transitions.Solved, states.Done}}
	cur := done.Clone()
	cur.Params = nil
	for _, m := range moves {
		from := cur.State
		cur.State = m.to
		if m.to == states.Done {
			cur.Token = "tok\u009b31m\u202eevil"
		}
		require.NoError(t, s.Apply(ctx, cur, &persist.Record{At: now, From: from, Event: m.ev, To: m.to}))
	}
	require.NoError(t, s.Close())

	for _, args := range [][]string{{"list"}, {"history", task.ID}, {"history", done.ID}, {"replay", "--all"}} {
		r := w.run(args...)
		require.Contains(t, []int{ExitOK, ExitFailed}, r.code, "%v: %s", args, r.err)
		assertTerminalSafe(t, strings.Join(args, " "), r.out+r.err)
	}
	r := w.run("list")
	assert.Contains(t, r.out, `nul\x00ref`)
	assert.Contains(t, r.out, `ERROR_\x1b[2J`)
	r = w.run("history", task.ID)
	assert.Contains(t, r.out, `first line\nFORGED 1 Done\x1b]0;t\a`)
	assert.Contains(t, r.out, `sitekey=k\tk`)
	assert.Contains(t, r.out, `pageurl=https://a.example/\x1b[2J`)
	r = w.run("history", done.ID)
	assert.Contains(t, r.out, `token     tok\u009b31m\u202eevil`)
}
