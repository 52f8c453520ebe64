package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// docsDir is the committed docs/ directory, seen from this package.
const docsDir = "../../docs"

// TestDocsUpToDate fails when a committed page differs from what its data
// renders today.
func TestDocsUpToDate(t *testing.T) {
	for _, pg := range Pages() {
		t.Run(pg.Name, func(t *testing.T) {
			want, err := pg.Render()
			require.NoError(t, err)
			path := filepath.Join(docsDir, pg.Name)
			got, err := os.ReadFile(path)
			if os.IsNotExist(err) {
				t.Fatalf("docs/%s is missing: run go generate ./...", pg.Name)
			}
			require.NoError(t, err)
			if !bytes.Equal(got, want) {
				t.Fatalf("docs/%s is stale: run go generate ./...\n%s", pg.Name, firstDiff(got, want))
			}
		})
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("first difference at line %d:\n committed: %q\n generated: %q", i+1, gl, wl)
		}
	}
	return "the files differ"
}

func TestPagesDeterministicAndWellFormed(t *testing.T) {
	names := map[string]bool{}
	for _, pg := range Pages() {
		t.Run(pg.Name, func(t *testing.T) {
			assert.False(t, names[pg.Name], "duplicate page name")
			names[pg.Name] = true
			a, err := pg.Render()
			require.NoError(t, err)
			b, err := pg.Render()
			require.NoError(t, err)
			assert.Equal(t, string(a), string(b), "two renders differ")
			assert.True(t, bytes.HasPrefix(a, []byte(Header)), "page starts with the generated-code header")
			assert.True(t, bytes.HasSuffix(a, []byte("\n")), "page ends with a newline")
			assert.NotContains(t, string(a), "\n\n\n", "no double blank lines")
			assertTablesWellFormed(t, string(a))
		})
	}
}

// assertTablesWellFormed checks that every row of every table has as many
// cells as its header, so no unescaped '|' split a cell.
func assertTablesWellFormed(t *testing.T, doc string) {
	t.Helper()
	want, inFence := -1, false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "|") {
			want = -1
			continue
		}
		n := strings.Count(line, "|") - strings.Count(line, `\|`)
		if want < 0 {
			want = n
			continue
		}
		assert.Equal(t, want, n, "line %d has a different number of cells: %s", i+1, line)
	}
}

func TestStatesHasEveryEdgeAndState(t *testing.T) {
	b, err := RenderStates()
	require.NoError(t, err)
	doc := string(b)

	assert.Contains(t, doc, "```mermaid\n"+fsm.Mermaid()+"```\n", "the diagram is fsm.Mermaid, fenced")

	for _, e := range transitions.Table() {
		row := fmt.Sprintf("| `%s` | `%s` | `%s` | %s |", e.From, e.Event, e.To, e.Why)
		assert.Equal(t, 1, strings.Count(doc, row+"\n"), "edge row %s", row)
	}

	tests := []struct {
		s        states.State
		terminal string
	}{
		{states.Submitting, "no"}, {states.Backoff, "no"}, {states.Polling, "no"}, {states.Resubmitting, "no"},
		{states.Done, "**yes**"}, {states.Failed, "**yes**"}, {states.NeedsAccountFix, "no"},
	}
	require.Len(t, tests, len(states.All()))
	for _, tt := range tests {
		assert.Contains(t, doc, fmt.Sprintf("| `%s` | %s | ", tt.s, tt.terminal), tt.s)
	}
	assert.Contains(t, doc, "| `NeedsAccountFix` | no | `account_fixed` |")
	assert.Contains(t, doc, "| `Done` | **yes** | — |")

	assert.Contains(t, doc, "| `created` | [*] → `Submitting` |")
	for _, ev := range transitions.Events() {
		assert.Contains(t, doc, fmt.Sprintf("| `%s` | `", ev), "event %s listed", ev)
	}
	assert.Contains(t, doc, "| `transient_error` | `Submitting` → `Backoff`, `Polling` → `Polling` |")
}

func TestErrorsHasEveryCode(t *testing.T) {
	b, err := RenderErrors()
	require.NoError(t, err)
	doc := string(b)

	for _, e := range transitions.Catalogue() {
		t.Run(e.Code, func(t *testing.T) {
			start := "| `" + e.Code + "` | " + string(e.Where) + " | "
			require.Equal(t, 1, strings.Count(doc, start), "one row for the code")
			i := strings.Index(doc, start)
			row := doc[i : i+strings.Index(doc[i:], "\n")]
			assert.Contains(t, row, " | "+e.Meaning+" | "+e.Fix+" |")
			if e.FromGuide {
				assert.Contains(t, row, " | ✓ | ")
			} else {
				assert.NotContains(t, row, "✓")
			}
			// The row sits in its class's section.
			section := doc[:i]
			section = section[strings.LastIndex(section, "\n### "):]
			assert.True(t, strings.HasPrefix(section, "\n### `"+string(e.Class)+"` ("), "row under the heading of class %s, got %q", e.Class, strings.SplitN(section, "\n", 3)[1])
		})
	}
}

func TestErrorsRetryAndBan(t *testing.T) {
	b, err := RenderErrors()
	require.NoError(t, err)
	doc := string(b)
	tests := []struct {
		code, retry, ban string
	}{
		{"ERROR_NO_SLOT_AVAILABLE", "5 s", "—"},
		{"ERROR_TOO_MUCH_REQUESTS", "backoff 3–10 s", "—"},
		{"MAX_USER_TURN", "10 s", "10 s"},
		{"ERROR_SERVER_ERROR", "policy backoff", "—"},
		{"ERROR: 1001", "after the ban", "10 min"},
		{"ERROR: 1003", "after the ban", "30 s"},
		{"IP_BANNED", "—", "5 min"},
		{"ERROR_ZERO_BALANCE", "—", "—"},
		{"CAPCHA_NOT_READY", "`poll_interval`", "—"},
		{"ERROR_CAPTCHA_UNSOLVABLE", "new task", "—"},
		{"ERROR_WRONG_USER_KEY", "—", "—"},
	}
	for _, tt := range tests {
		e, ok := transitions.Lookup(tt.code)
		require.True(t, ok, tt.code)
		assert.Contains(t, doc, fmt.Sprintf("| `%s` | %s | %s | %s | ", tt.code, e.Where, tt.retry, tt.ban), tt.code)
	}
}

func TestErrorsLegend(t *testing.T) {
	b, err := RenderErrors()
	require.NoError(t, err)
	doc := string(b)

	legend := doc[strings.Index(doc, "\n## Classes\n"):strings.Index(doc, "\n## Columns\n")]
	for _, c := range append(transitions.Classes(), transitions.ClassUnknown) {
		assert.Contains(t, legend, "| `"+string(c)+"` | ", "class %s in the legend", c)
	}
	// The moves of each class come from the table, as the contract says.
	tests := []struct {
		class transitions.Class
		move  string
	}{
		{transitions.ClassTransient, "`Submitting` → `Backoff` (`transient_error`)"},
		{transitions.ClassTransient, "`Backoff` → `Submitting` (`backoff_elapsed`)"},
		{transitions.ClassTransient, "`Submitting` → `Failed` (`retries_exhausted`)"},
		{transitions.ClassAccount, "`NeedsAccountFix` → `Submitting` (`account_fixed`)"},
		{transitions.ClassResubmit, "`Resubmitting` → `Submitting` (`resubmit_started`)"},
		{transitions.ClassPermanent, "`Polling` → `Failed` (`permanent_error`)"},
		{transitions.ClassAccount, "`Submitting` → `NeedsAccountFix` (`account_error`)"},
		{transitions.ClassNotReady, "`Polling` → `Failed` (`poll_timeout`)"},
		{transitions.ClassResubmit, "`Polling` → `Resubmitting` (`resubmit_needed`)"},
		{transitions.ClassUnknown, "`Polling` → `Failed` (`unknown_error`)"},
	}
	for _, tt := range tests {
		i := strings.Index(legend, "| `"+string(tt.class)+"` | ")
		require.GreaterOrEqual(t, i, 0)
		row := legend[i : i+strings.Index(legend[i:], "\n")]
		assert.Contains(t, row, tt.move, tt.class)
	}
	for _, code := range []string{transitions.CodePollTimeout, transitions.CodeCancelled, transitions.CodeTransport, transitions.CodeBreakerOpen} {
		assert.Contains(t, doc, "| `"+code+"` | `", code)
	}
}

func TestClassDocsCoverEveryClass(t *testing.T) {
	seen := map[transitions.Class]int{}
	for _, d := range classDocs {
		seen[d.class]++
		assert.NotEmpty(t, d.events, d.class)
	}
	for _, c := range append(transitions.Classes(), transitions.ClassUnknown) {
		assert.Equal(t, 1, seen[c], "class %s documented once", c)
	}
}
