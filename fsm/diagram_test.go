package fsm_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestMermaid(t *testing.T) {
	d := fsm.Mermaid()
	assert.Equal(t, d, fsm.Mermaid(), "deterministic")
	lines := strings.Split(strings.TrimSuffix(d, "\n"), "\n")
	require.NotEmpty(t, lines)
	assert.Equal(t, "stateDiagram-v2", lines[0])

	want := map[string]bool{"    [*] --> Submitting": true, "    Done --> [*]": true, "    Failed --> [*]": true}
	for _, e := range transitions.Table() {
		want[fmt.Sprintf("    %s --> %s: %s", e.From, e.To, e.Event)] = true
	}
	got := map[string]bool{}
	for _, l := range lines[1:] {
		assert.False(t, got[l], "line twice: %q", l)
		got[l] = true
	}
	assert.Equal(t, want, got, "one line per edge, the start and the terminal states, nothing else")
	assert.NotContains(t, d, "NeedsAccountFix --> [*]", "NeedsAccountFix is not terminal")
}

func TestMermaidHighlight(t *testing.T) {
	plain := fsm.Mermaid()
	for _, s := range states.All() {
		d := fsm.MermaidHighlight(s)
		require.True(t, strings.HasPrefix(d, plain), "the highlighted diagram extends the plain one")
		extra := strings.TrimPrefix(d, plain)
		assert.Contains(t, extra, "classDef "+fsm.HighlightClass+" ")
		assert.Contains(t, extra, fmt.Sprintf("class %s %s\n", s, fsm.HighlightClass))
		assert.Equal(t, 1, strings.Count(extra, "class "+string(s)), "only %s is marked", s)
		for _, other := range states.All() {
			if other != s {
				assert.NotContains(t, extra, "class "+string(other)+" ")
			}
		}
	}
	assert.Equal(t, plain, fsm.MermaidHighlight("Sleeping"), "an invalid state is not marked")
	assert.Equal(t, plain, fsm.MermaidHighlight(""))
}

func TestDot(t *testing.T) {
	d := fsm.Dot()
	assert.Equal(t, d, fsm.Dot(), "deterministic")
	require.True(t, strings.HasPrefix(d, "digraph captchafsm {\n"))
	require.True(t, strings.HasSuffix(d, "}\n"))
	assert.Contains(t, d, `"[*]" -> "Submitting" [label="created"];`)
	for _, e := range transitions.Table() {
		assert.Contains(t, d, fmt.Sprintf("%q -> %q [label=%q];", e.From, e.To, e.Event))
	}
	assert.Equal(t, len(transitions.Table())+1, strings.Count(d, " -> "), "one edge per table row plus the start")
	for _, s := range states.All() {
		assert.Contains(t, d, fmt.Sprintf("    %q", s), "state %s declared", s)
	}
	assert.Contains(t, d, `"Done" [shape=doublecircle`)
	assert.Contains(t, d, `"Failed" [shape=doublecircle`)
	assert.Equal(t, strings.Count(d, "{"), strings.Count(d, "}"))
}
