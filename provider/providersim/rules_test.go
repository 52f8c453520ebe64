package providersim_test

import (
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func TestMaxUserTurn(t *testing.T) {
	tests := []struct {
		name  string
		speed float64
		ban   time.Duration
	}{
		{"production", 1, 10 * time.Second},
		{"speed 10", 10, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), Speed: tt.speed})
				for _, a := range submits(h, 60) {
					h.mustID(a)
				}
				advance(2999 * time.Millisecond) // still within 3 s of the first
				assert.Equal(t, "MAX_USER_TURN", h.recaptcha("61"))
				assert.Equal(t, "MAX_USER_TURN", decode(t, h.in("method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com", "json", "1")).Request)
				advance(tt.ban - time.Nanosecond)
				assert.Equal(t, "MAX_USER_TURN", h.recaptcha("62"), "blocked until the ban ends")
				advance(time.Nanosecond)
				h.mustID(h.recaptcha("63"))

				l := h.sim.Ledger()
				assert.Equal(t, map[string]int{"MAX_USER_TURN": 1}, l.Bans)
				assert.Equal(t, 3, l.Answers["MAX_USER_TURN"])
				assert.Equal(t, 61, l.Charged())
				assert.Equal(t, 64, l.Requests[providersim.KindSubmit])
			})
		})
	}
}

func TestSubmitRateWithinLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 20 per second is exactly 60 in any 3 s: allowed.
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		for i := range 200 {
			h.mustID(h.recaptcha(strconv.Itoa(i)))
			advance(50 * time.Millisecond)
		}
		assert.Empty(t, h.sim.Ledger().Bans)
	})
}

func TestPollFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		id := h.mustID(h.recaptcha("a")) // one captcha: 20 more polls allowed
		for i := range 1220 {
			a := h.res("action", "get", "id", id)
			require.NotEqual(t, "ERROR: 1005", a, "poll %d", i+1)
			advance(time.Second)
		}
		assert.Equal(t, "ERROR: 1005", h.res("action", "get", "id", id))
		assert.Equal(t, "ERROR: 1005", h.res("action", "getbalance"))
		assert.Equal(t, jsonAnswer{Status: 0, Request: "ERROR: 1005"}, decode(t, h.res("action", "getbalance", "json", "1")))
		h.mustID(h.recaptcha("b")) // in.php is not blocked
		advance(10*time.Minute - time.Nanosecond)
		assert.Equal(t, "ERROR: 1005", h.res("action", "getbalance"))
		advance(time.Nanosecond)
		assert.Equal(t, "99.99402", h.res("action", "getbalance"))
		l := h.sim.Ledger()
		assert.Equal(t, map[string]int{"ERROR: 1005": 1}, l.Bans)
		assert.Equal(t, 1220, l.Polls[mustInt(t, id)], "polls answered by the ban do not reach the task")
	})
}

func TestPollRateOverAnHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 1200 polls an hour, hour after hour, is within the rule.
		h := newHarness(t, providersim.Config{})
		for i := range 3600 {
			assert.Equal(t, "100", h.res("action", "getbalance"), "poll %d", i)
			advance(3 * time.Second)
		}
		assert.Empty(t, h.sim.Ledger().Bans)
	})
}

func TestFloodBans(t *testing.T) {
	tests := []struct {
		name  string
		mix   providersim.Mix
		empty bool
		code  string
		ban   time.Duration
		first string
	}{
		{"no slot", providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 1}}, false, "ERROR: 1001", 10 * time.Minute, "ERROR_NO_SLOT_AVAILABLE"},
		{"zero balance", providersim.NoErrors(), true, "ERROR: 1002", 5 * time.Minute, "ERROR_ZERO_BALANCE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, providersim.Config{Mix: tt.mix})
				if tt.empty {
					h.sim.SetBalance(0)
				}
				for i := range 120 {
					require.Equal(t, tt.first, h.recaptcha(strconv.Itoa(i)), "answer %d", i+1)
					advance(450 * time.Millisecond) // under 60 in 3 s; 120 in 54 s
				}
				// The 120th answer in under a minute started the ban.
				assert.Equal(t, tt.code, h.recaptcha("x"))
				advance(tt.ban - 450*time.Millisecond - time.Nanosecond)
				assert.Equal(t, tt.code, h.recaptcha("y"))
				advance(time.Nanosecond)
				assert.Equal(t, tt.first, h.recaptcha("z"))
				assert.Equal(t, map[string]int{tt.code: 1}, h.sim.Ledger().Bans)
			})
		})
	}
	t.Run("slower than 120 a minute", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, providersim.Config{Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 1}}})
			for i := range 300 {
				require.Equal(t, "ERROR_NO_SLOT_AVAILABLE", h.recaptcha(strconv.Itoa(i)))
				advance(510 * time.Millisecond) // 120 answers take just over a minute
			}
		})
	})
}

func TestNoRateRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.5}}, NoRateRules: true})
		for _, a := range submits(h, 500) {
			assert.NotContains(t, []string{"MAX_USER_TURN", "ERROR: 1001"}, a)
		}
		for range 2000 {
			assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", h.res("action", "get", "id", "1"))
		}
		assert.Empty(t, h.sim.Ledger().Bans)
	})
}
