package fsm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestDefinitionOfTable(t *testing.T) {
	d, err := loadDefinition()
	require.NoError(t, err, "transitions.Table must build a machine")
	assert.Len(t, d.events, len(transitions.Table()))
	for _, ev := range transitions.Events() {
		assert.True(t, d.known[ev], ev)
	}
	assert.False(t, d.known[transitions.Created])
}

// TestDefinitionRefusesBadTables: looplab would silently accept each of
// these (a duplicate key overwrites the first edge), so the build must not.
func TestDefinitionRefusesBadTables(t *testing.T) {
	ok := transitions.Edge{From: states.Polling, Event: transitions.Solved, To: states.Done}
	tests := []struct {
		name  string
		table []transitions.Edge
		want  string
	}{
		{"empty", nil, "fsm: transition table is empty"},
		{"bad from", []transitions.Edge{ok, {From: "Sleeping", Event: "wake", To: states.Polling}}, `edge 1: from "Sleeping"`},
		{"bad to", []transitions.Edge{{From: states.Polling, Event: "x", To: ""}}, `edge 0: to ""`},
		{"no event", []transitions.Edge{{From: states.Polling, To: states.Done}}, `event "" cannot label an edge`},
		{"created", []transitions.Edge{{From: states.Polling, Event: transitions.Created, To: states.Done}}, `event "created" cannot label an edge`},
		{"terminal", []transitions.Edge{{From: states.Done, Event: "again", To: states.Polling}}, "leaves terminal state Done"},
		{"duplicate", []transitions.Edge{ok, {From: states.Polling, Event: transitions.Solved, To: states.Failed}}, `edge 1: second edge from Polling on "solved"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildDefinition(tt.table)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := buildDefinition([]transitions.Edge{ok})
	assert.NoError(t, err)
}
