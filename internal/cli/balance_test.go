package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func TestBalance(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Balance: 12.25})
	r := w.run("balance")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, "12.25\n", r.out)
	r = w.run("balance", "--json")
	assert.JSONEq(t, `{"balance":"12.25"}`, r.out)
}

func TestBalanceAPIError(t *testing.T) {
	t.Parallel()
	// The simulator knows one key only: ours does not exist there.
	w := newWorld(t).withSim(providersim.Config{Key: "0123456789abcdef0123456789abcdef"})
	r := w.run("balance")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "balance: ERROR_KEY_DOES_NOT_EXIST (The API key has a valid format but no account has it); Copy the key again")
}
