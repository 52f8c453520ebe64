package providersim_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// submits sends n valid submits and returns their answers.
func submits(h *harness, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = h.in("method", "hcaptcha", "sitekey", "k", "pageurl", "https://example.com/"+strconv.Itoa(i))
	}
	return out
}

func TestMixDeterministic(t *testing.T) {
	cfg := func(seed int64) providersim.Config {
		return providersim.Config{Seed: seed, NoRateRules: true, Balance: 1e6,
			Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.2, "ERROR_BAD_PARAMETERS": 0.1}}}
	}
	a := submits(newHarness(t, cfg(42)), 500)
	b := submits(newHarness(t, cfg(42)), 500)
	c := submits(newHarness(t, cfg(43)), 500)
	assert.Equal(t, a, b, "same seed and requests, same answers")
	assert.NotEqual(t, a, c, "another seed, other answers")

	// Faults draw from their own stream: adding them does not shift the mix.
	withFaults := cfg(42)
	withFaults.Faults.Balance.HTTP500 = 0.5
	h := newHarness(t, withFaults)
	var d []string
	for i := range 500 {
		h.post("/res.php", form("action", "getbalance"))
		d = append(d, h.in("method", "hcaptcha", "sitekey", "k", "pageurl", "https://example.com/"+strconv.Itoa(i)))
	}
	assert.Equal(t, a, d)
}

func TestMixRates(t *testing.T) {
	const n = 10000
	tests := []struct {
		name       string
		mix        providersim.Mix
		wantSubmit map[string]float64
		wantPoll   map[string]float64
	}{
		{"default", providersim.DefaultMix(),
			map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.03, "ERROR_ZERO_BALANCE": 0.002, "ERROR_BAD_PARAMETERS": 0.003},
			map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.01}},
		{"zero value means default", providersim.Mix{},
			map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.03, "ERROR_ZERO_BALANCE": 0.002, "ERROR_BAD_PARAMETERS": 0.003},
			map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.01}},
		{"custom", providersim.Mix{
			Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.1, "ERROR_SOMETHING_NEW": 0.05},
			Poll:   map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.2, "ERROR_BAD_DUPLICATES": 0.05}},
			map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.1, "ERROR_SOMETHING_NEW": 0.05},
			map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.2, "ERROR_BAD_DUPLICATES": 0.05}},
		{"none", providersim.NoErrors(), map[string]float64{}, map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, providersim.Config{Seed: 3, NoRateRules: true, Balance: 1e6, Mix: tt.mix})
			answers := submits(h, n)
			got := map[string]int{}
			for _, a := range answers {
				if !strings.HasPrefix(a, "OK|") {
					got[a]++
				}
			}
			assertRates(t, got, tt.wantSubmit, n)

			l := h.sim.Ledger()
			outcomes := map[string]int{}
			for _, task := range l.Tasks {
				if task.Outcome != "" {
					outcomes[task.Outcome]++
				}
			}
			assertRates(t, outcomes, tt.wantPoll, l.Charged())
		})
	}
}

// assertRates checks counts against probabilities within five standard
// deviations (and that no other code appeared).
func assertRates(t *testing.T, got map[string]int, want map[string]float64, n int) {
	t.Helper()
	for code := range got {
		_, ok := want[code]
		assert.True(t, ok, "unexpected code %s", code)
	}
	for code, p := range want {
		mean := p * float64(n)
		sd := math.Sqrt(float64(n) * p * (1 - p))
		assert.InDelta(t, mean, float64(got[code]), 5*sd+1, "%s: %d of %d, want about %.0f", code, got[code], n, mean)
	}
}

func TestParseMix(t *testing.T) {
	def := providersim.DefaultMix()
	tests := []struct {
		name, in string
		want     providersim.Mix
		err      string
	}{
		{"both", `{"submit":{"ERROR_NO_SLOT_AVAILABLE":0.05},"poll":{"ERROR_CAPTCHA_UNSOLVABLE":0.02}}`,
			providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.05}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.02}}, ""},
		{"omitted poll keeps the default", `{"submit":{"MAX_USER_TURN":0.5}}`,
			providersim.Mix{Submit: map[string]float64{"MAX_USER_TURN": 0.5}, Poll: def.Poll}, ""},
		{"empty object is the default", `{}`, def, ""},
		{"empty section means none", `{"submit":{},"poll":{}}`, providersim.NoErrors(), ""},
		{"unknown but code-like", `{"poll":{"ERROR_NEW_THING":1}}`,
			providersim.Mix{Submit: def.Submit, Poll: map[string]float64{"ERROR_NEW_THING": 1}}, ""},
		{"ban code", `{"submit":{"ERROR: 1001":0.01}}`,
			providersim.Mix{Submit: map[string]float64{"ERROR: 1001": 0.01}, Poll: def.Poll}, ""},
		{"not a code", `{"submit":{"hello":0.1}}`, providersim.Mix{}, `submit["hello"]: not a provider code`},
		{"pipe in code", `{"poll":{"ERROR_A|B":0.1}}`, providersim.Mix{}, `poll["ERROR_A|B"]: not a provider code`},
		{"above one", `{"poll":{"ERROR_CAPTCHA_UNSOLVABLE":1.5}}`, providersim.Mix{}, `poll["ERROR_CAPTCHA_UNSOLVABLE"]: probability 1.5 is outside 0..1`},
		{"negative", `{"submit":{"ERROR_NO_SLOT_AVAILABLE":-0.1}}`, providersim.Mix{}, `submit["ERROR_NO_SLOT_AVAILABLE"]: probability -0.1`},
		{"sum above one", `{"submit":{"ERROR_NO_SLOT_AVAILABLE":0.6,"MAX_USER_TURN":0.6}}`, providersim.Mix{}, "submit: probabilities sum to 1.2"},
		{"not ready is no final answer", `{"poll":{"CAPCHA_NOT_READY":0.1}}`, providersim.Mix{}, `poll["CAPCHA_NOT_READY"]: not a final answer`},
		{"unknown key", `{"submits":{}}`, providersim.Mix{}, `unknown field "submits"`},
		{"not a number", `{"poll":{"ERROR_X":"high"}}`, providersim.Mix{}, "providersim: mix:"},
		{"trailing data", `{} {}`, providersim.Mix{}, "trailing data"},
		{"not json", `submit=0.1`, providersim.Mix{}, "providersim: mix:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := providersim.ParseMix([]byte(tt.in))
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, strings.HasPrefix(err.Error(), "providersim: "), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  providersim.Config
		err  string
	}{
		{"zero", providersim.Config{}, ""},
		{"negative speed", providersim.Config{Speed: -1}, "Speed"},
		{"negative balance", providersim.Config{Balance: -1}, "Balance"},
		{"negative cost", providersim.Config{Costs: map[string]float64{"post": -1}}, `Costs["post"]`},
		{"solve time upside down", providersim.Config{SolveTime: map[string]providersim.Dist{"post": {Min: 2, Max: 1}}}, `SolveTime["post"]`},
		{"fault above one", providersim.Config{Faults: providersim.Faults{Poll: providersim.FaultRates{Drop: 2}}}, "Faults.Poll.Drop"},
		{"faults sum above one", providersim.Config{Faults: providersim.Faults{Report: providersim.FaultRates{Drop: 0.6, Slow: 0.6}}}, "Faults.Report"},
		{"negative slow delay", providersim.Config{Faults: providersim.Faults{Submit: providersim.FaultRates{SlowDelay: -1}}}, "Faults.Submit.SlowDelay"},
		{"bad mix", providersim.Config{Mix: providersim.Mix{Poll: map[string]float64{"nope": 1}}}, `poll["nope"]`},
		{"bad key", providersim.Config{Key: "secret-but-wrong"}, "Key"},
		{"negative ttl", providersim.Config{TokenTTL: -1}, "TokenTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			assert.NotContains(t, err.Error(), "secret", "the key never appears in errors")
			assert.PanicsWithError(t, err.Error(), func() { providersim.New(tt.cfg) })
			_, startErr := providersim.Start(tt.cfg, "")
			assert.EqualError(t, startErr, err.Error())
		})
	}
	h := newHarness(t, providersim.Config{})
	assert.Error(t, h.sim.SetMix(providersim.Mix{Submit: map[string]float64{"ERROR_X": 2}}))
}
