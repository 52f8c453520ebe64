package engine_test

import (
	"math"
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

// TestPolicyBounds: every key has bounds; a value outside them (the
// issue's submit_rate 1e-9, a 1ns poll interval, a century of poll
// timeout) is refused with the key, the bounds and the value; the bounds
// themselves are accepted.
func TestPolicyBounds(t *testing.T) {
	bad := []struct{ in, want string }{
		{`{"submit_rate":1e-9}`, "submit_rate: must be at least 0.01 per second, one submit every 1m40s (got 1e-09: one every 31.7 years)"},
		{`{"submit_rate":0.001}`, "submit_rate: must be at least 0.01 per second, one submit every 1m40s (got 0.001: one every 16m40s)"},
		{`{"submit_rate":20.5}`, "submit_rate: must be above 0 and at most 20 per second (got 20.5)"},
		{`{"poll_interval":"1ns"}`, "poll_interval: must be between 1ms and 10m0s (got 1ns)"},
		{`{"poll_interval":"11m"}`, "poll_interval: must be between 1ms and 10m0s (got 11m0s)"},
		{`{"poll_timeout":"876000h"}`, "poll_timeout: must be between 1ms and 1h0m0s (got 876000h0m0s)"},
		{`{"first_poll_delay":"999us"}`, "first_poll_delay: must be between 1ms and 10m0s (got 999µs)"},
		{`{"first_poll_delay_token":"30m"}`, "first_poll_delay_token: must be between 1ms and 10m0s"},
		{`{"backoff_base":"1ns"}`, "backoff_base: must be between 1ms and 10m0s"},
		{`{"backoff_max":"2h"}`, "backoff_max: must be between 1ms and 1h0m0s"},
		{`{"request_timeout":"1ms"}`, "request_timeout: must be between 100ms and 10m0s (got 1ms)"},
		{`{"request_timeout":"1h"}`, "request_timeout: must be between 100ms and 10m0s"},
		{`{"retry_delays":{"MAX_USER_TURN":"1ns"}}`, "retry_delays.MAX_USER_TURN: must be between 1ms and 1h0m0s (got 1ns)"},
		{`{"retry_delays":{"ERROR_NO_SLOT_AVAILABLE":"24h"}}`, "retry_delays.ERROR_NO_SLOT_AVAILABLE: must be between 1ms and 1h0m0s"},
		{`{"max_retries":101}`, "max_retries: at most 100 (got 101)"},
		{`{"max_resubmits":1000}`, "max_resubmits: at most 100 (got 1000)"},
		{`{"concurrency":10001}`, "concurrency: must be between 1 and 10000 (got 10001)"},
		{`{"store_failure_limit":"10ms"}`, "store_failure_limit: must be between 1s and 1h0m0s (got 10ms)"},
		{`{"store_failure_limit":"48h"}`, "store_failure_limit: must be between 1s and 1h0m0s"},
		{`{"account_probe_interval":"2h"}`, `account_probe_interval: must be between 1s and 1h0m0s, or "0s" for no probing (got 2h0m0s)`},
		{`{"account_probe_interval":"10ms"}`, "account_probe_interval: must be between 1s and 1h0m0s"},
		{`{"max_in_flight":2000000}`, "max_in_flight: must be between 0 (no bound) and 1000000"},
	}
	for _, tt := range bad {
		_, err := engine.ParsePolicy([]byte(tt.in))
		require.Error(t, err, tt.in)
		assert.Contains(t, err.Error(), "engine: policy: "+tt.want, tt.in)
	}
	good := []string{
		`{"submit_rate":0.01}`, `{"submit_rate":20}`,
		`{"poll_interval":"1ms"}`, `{"poll_interval":"10m","poll_timeout":"1h"}`,
		`{"first_poll_delay":"1ms","first_poll_delay_token":"1ms","poll_timeout":"2ms"}`,
		`{"first_poll_delay":"10m","first_poll_delay_token":"10m","poll_timeout":"1h"}`,
		`{"backoff_base":"1ms","backoff_max":"1ms"}`, `{"backoff_base":"10m","backoff_max":"1h"}`,
		`{"request_timeout":"100ms"}`, `{"request_timeout":"10m"}`,
		`{"retry_delays":{"MAX_USER_TURN":"1ms","ERROR_NO_SLOT_AVAILABLE":"1h"}}`,
		`{"max_retries":0,"max_resubmits":100,"concurrency":1}`, `{"concurrency":10000}`,
		`{"store_failure_limit":"1s"}`, `{"store_failure_limit":"1h"}`,
		`{"account_probe_interval":"0s"}`, `{"account_probe_interval":"1s"}`, `{"account_probe_interval":"1h"}`,
		`{"max_in_flight":0}`, `{"max_in_flight":1000000}`,
	}
	for _, in := range good {
		_, err := engine.ParsePolicy([]byte(in))
		assert.NoError(t, err, in)
	}

	// The same bounds hold for a Policy built in Go (engine.Open validates).
	assert.ErrorContains(t, engine.Policy{SubmitRate: 1e-9}.Validate(), "submit_rate: must be at least 0.01")
	assert.ErrorContains(t, engine.Policy{PollInterval: time.Nanosecond}.Validate(), "poll_interval: must be between 1ms")
	assert.ErrorContains(t, engine.Policy{PollTimeout: 100 * 365 * 24 * time.Hour}.Validate(), "poll_timeout: must be between")
	assert.ErrorContains(t, engine.Policy{RetryDelays: map[string]time.Duration{"MAX_USER_TURN": time.Nanosecond}}.Validate(), "retry_delays.MAX_USER_TURN")
	require.NoError(t, engine.DefaultPolicy().Validate())

	// Every key has its bounds, once, in the order of the keys.
	var keys []string
	for _, b := range engine.PolicyBounds() {
		keys = append(keys, b.Key)
		assert.NotEmpty(t, b.Default, b.Key)
		assert.NotEmpty(t, b.Min, b.Key)
		assert.NotEmpty(t, b.Max, b.Key)
	}
	assert.Equal(t, engine.PolicyKeys(), keys)
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

// TestPolicyFaster: the defaults' waits are divided by the speed, the
// catalogue's delays and bans too; what the policy sets stays.
func TestPolicyFaster(t *testing.T) {
	p := engine.Policy{PollInterval: 3 * time.Second, RetryDelays: map[string]time.Duration{"MAX_USER_TURN": 2 * time.Second}}.Faster(10)
	require.NoError(t, p.Validate())
	assert.Equal(t, 3*time.Second, p.PollInterval, "set: kept")
	assert.Equal(t, 500*time.Millisecond, p.FirstPollDelay)
	assert.Equal(t, 2*time.Second, p.FirstPollDelayToken)
	assert.Equal(t, 12*time.Second, p.PollTimeout)
	assert.Equal(t, 5*time.Second, p.RequestTimeout, "at least 5 s")
	assert.Equal(t, 500*time.Millisecond, p.RetryDelays["ERROR_NO_SLOT_AVAILABLE"])
	assert.Equal(t, time.Minute, p.RetryDelays["ERROR: 1001"], "a 10-minute ban")
	assert.Equal(t, 2*time.Second, p.RetryDelays["MAX_USER_TURN"], "set: kept")
	assert.Equal(t, 3, p.WithDefaults().MaxRetries, "counts are not times")
	assert.Equal(t, time.Millisecond, engine.Policy{}.Faster(1e9).PollInterval, "at least 1 ms")

	assert.Equal(t, engine.Policy{}, engine.Policy{}.Faster(1))
	assert.Equal(t, engine.Policy{}, engine.Policy{}.Faster(math.NaN()))
}
