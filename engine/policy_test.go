package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
)

func TestParsePolicy(t *testing.T) {
	def := engine.DefaultPolicy()
	t.Run("empty object keeps defaults", func(t *testing.T) {
		p, err := engine.ParsePolicy([]byte(`{}`))
		require.NoError(t, err)
		assert.Equal(t, def, p)
	})
	t.Run("the contract's example", func(t *testing.T) {
		p, err := engine.ParsePolicy([]byte(`{"first_poll_delay": "5s", "poll_interval": "5s", "poll_timeout": "120s",
 "max_retries": 3, "backoff_base": "3s", "backoff_max": "30s",
 "max_resubmits": 2, "request_timeout": "30s", "concurrency": 50, "submit_rate": 20,
 "retry_delays": {"ERROR_NO_SLOT_AVAILABLE": "5s", "MAX_USER_TURN": "10s"}}`))
		require.NoError(t, err)
		assert.Equal(t, def, p)
	})
	t.Run("overrides", func(t *testing.T) {
		p, err := engine.ParsePolicy([]byte(`{"poll_interval":"2s","max_retries":0,"concurrency":8,
			"retry_delays":{"ERROR_TOO_MUCH_REQUESTS":"7s"}}`))
		require.NoError(t, err)
		assert.Equal(t, 2*time.Second, p.PollInterval)
		assert.Equal(t, -1, p.MaxRetries, "an explicit 0 means no retries")
		assert.Equal(t, 8, p.Concurrency)
		assert.Equal(t, 7*time.Second, p.RetryDelays["ERROR_TOO_MUCH_REQUESTS"])
		assert.Equal(t, 5*time.Second, p.RetryDelays["ERROR_NO_SLOT_AVAILABLE"], "other delays kept")
		assert.Equal(t, def.PollTimeout, p.PollTimeout)
	})
	bad := []struct{ in, key string }{
		{`{"poll_intervall":"5s"}`, "poll_intervall"},
		{`{"poll_interval":"5"}`, "poll_interval"},
		{`{"poll_interval":5}`, "poll_interval"},
		{`{"poll_timeout":"-1s"}`, "poll_timeout"},
		{`{"max_retries":-2}`, "max_retries"},
		{`{"max_retries":"3"}`, "max_retries"},
		{`{"concurrency":0}`, "concurrency"},
		{`{"submit_rate":50}`, "submit_rate"},
		{`{"submit_rate":0}`, "submit_rate"},
		{`{"backoff_base":"1m","backoff_max":"30s"}`, "backoff_base"},
		{`{"poll_timeout":"15s"}`, "first_poll_delay_token"},
		{`{"retry_delays":{"ERROR_NOPE":"5s"}}`, "retry_delays"},
		{`{"retry_delays":{"MAX_USER_TURN":"soon"}}`, "retry_delays.MAX_USER_TURN"},
		{`[1,2]`, "JSON object"},
		{`{"poll_interval":"5s"`, "JSON object"},
	}
	for _, tt := range bad {
		t.Run(tt.in, func(t *testing.T) {
			_, err := engine.ParsePolicy([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.key)
		})
	}
}

func TestPolicyZeroValueMeansDefaults(t *testing.T) {
	assert.Equal(t, engine.DefaultPolicy(), engine.Policy{}.WithDefaults())
	require.NoError(t, engine.Policy{}.Validate())
	assert.ErrorContains(t, engine.Policy{SubmitRate: 25}.Validate(), "submit_rate")
	assert.ErrorContains(t, engine.Policy{PollInterval: -time.Second}.Validate(), "poll_interval")
}

// FuzzParsePolicy: any input gives a valid policy or an error, never a
// panic; an accepted policy validates.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"poll_interval":"2s","max_retries":0}`))
	f.Add([]byte(`{"retry_delays":{"MAX_USER_TURN":"10s"}}`))
	f.Add([]byte(`{"concurrency":1e400}`))
	f.Add([]byte(`{"submit_rate":-0}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := engine.ParsePolicy(data)
		if err != nil {
			return
		}
		require.NoError(t, p.Validate())
		w := p.WithDefaults()
		assert.Positive(t, w.PollInterval)
		assert.Positive(t, w.Concurrency)
		assert.Positive(t, w.SubmitRate)
	})
}
