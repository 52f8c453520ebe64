package states_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/states"
)

func TestTerminal(t *testing.T) {
	tests := []struct {
		s        states.State
		terminal bool
	}{
		{states.Submitting, false},
		{states.Backoff, false},
		{states.Polling, false},
		{states.Resubmitting, false},
		{states.Done, true},
		{states.Failed, true},
		{states.NeedsAccountFix, false},
	}
	require.Len(t, tests, len(states.All()))
	for _, tt := range tests {
		assert.Equal(t, tt.terminal, tt.s.Terminal(), tt.s)
		assert.True(t, tt.s.Valid())
		assert.Equal(t, tt.terminal || tt.s == states.NeedsAccountFix, tt.s.Settled(), tt.s)
		assert.Equal(t, !tt.s.Settled(), tt.s.Active(), tt.s)
		assert.Equal(t, tt.s.Active(), slices.Contains(states.ActiveStates(), tt.s), tt.s)
	}
	assert.False(t, states.State("").Active())
	assert.False(t, states.State("Sleeping").Active())
	assert.False(t, states.State("Sleeping").Valid())
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want states.State
		err  bool
	}{
		{"Submitting", states.Submitting, false},
		{"polling", states.Polling, false},
		{" DONE ", states.Done, false},
		{"needs_account_fix", states.NeedsAccountFix, false},
		{"NeedsAccountFix", states.NeedsAccountFix, false},
		{"", "", true},
		{"Finished", "", true},
	}
	for _, tt := range tests {
		got, err := states.Parse(tt.in)
		if tt.err {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, s := range states.All() {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		var got states.State
		require.NoError(t, json.Unmarshal(b, &got))
		assert.Equal(t, s, got)
	}
	var bad states.State
	assert.ErrorContains(t, json.Unmarshal([]byte(`"Nope"`), &bad), "unknown state")
}
