package provider_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestLimitsBansComeFromTheCatalogue(t *testing.T) {
	for _, tc := range []struct {
		code string
		want time.Duration
	}{
		{provider.CodeSubmitBurst, 10 * time.Second},
		{provider.CodePollBudget, 10 * time.Minute},
		{provider.CodeNoSlotFlood, 10 * time.Minute},
		{provider.CodeZeroBalanceFlood, 5 * time.Minute},
		{provider.CodeBadKeyBan, 5 * time.Minute},
	} {
		e, ok := transitions.Lookup(tc.code)
		assert.True(t, ok, "%s is a catalogue code", tc.code)
		assert.True(t, e.IsBan(), "%s announces a ban", tc.code)
		assert.Equal(t, tc.want, provider.Ban(tc.code), tc.code)
	}
	assert.Zero(t, provider.Ban("ERROR_ZERO_BALANCE"))
	assert.Zero(t, provider.Ban("NO_SUCH_CODE"))
	_, ok := transitions.Lookup(provider.CodePollTooSoon)
	assert.True(t, ok)
}

func TestLimitsFigures(t *testing.T) {
	assert.Equal(t, 1200, provider.PollBudget(0))
	assert.Equal(t, 1220, provider.PollBudget(1))
	assert.Equal(t, 3200, provider.PollBudget(100))
	assert.Equal(t, 10*time.Second, provider.FirstPoll("userrecaptcha"))
	assert.Equal(t, 10*time.Second, provider.FirstPoll("turnstile"))
	assert.Equal(t, 5*time.Second, provider.FirstPoll("base64"))
	assert.Equal(t, 5*time.Second, provider.FirstPoll("post"))
}
