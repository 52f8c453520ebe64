package providersim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// Config configures a Sim. Its zero value is a usable simulator: the default
// error mix, solve times and costs, a balance of 100, rate rules on, poll
// timing rules off, no faults, any well-formed key accepted, and time.Now
// as the clock.
type Config struct {
	// Seed makes every draw (errors, solve times, faults, tokens)
	// deterministic: the same seed and the same sequence of requests give the
	// same answers.
	Seed int64
	// Mix is the error mix. Its zero value (both maps nil) means DefaultMix;
	// NoErrors gives a mix without errors.
	Mix Mix
	// SolveTime is the solve-time distribution per method. Methods it does
	// not hold keep the defaults (DefaultSolveTime): images 2–8 s, token
	// methods (userrecaptcha, hcaptcha, turnstile, ...) 12–40 s, text and
	// audio 5–20 s.
	SolveTime map[string]Dist
	// Speed divides solve times, ban lengths and token lifetimes, for a demo
	// that should not take minutes. 0 means 1.
	Speed float64
	// Balance is the account's starting balance; 0 means 100. Every accepted
	// task is charged its method's cost; use Sim.SetBalance(0) for an empty
	// account.
	Balance float64
	// Costs is the price of one task per method. Methods it does not hold
	// keep the defaults (DefaultCost).
	Costs map[string]float64
	// Faults are the transport faults injected, per kind of request.
	Faults Faults
	// Now is the clock; nil means time.Now (virtual inside a testing/synctest
	// bubble). Readiness, rate rules and bans follow it. Waits (the Slow
	// fault) use real timers.
	Now func() time.Time
	// Key, when set, is the only key that exists: another well-formed key is
	// answered ERROR_KEY_DOES_NOT_EXIST. A key that is not 32 hex characters
	// is always answered ERROR_WRONG_USER_KEY.
	Key string
	// Keys are more keys that exist, beside Key; all reach the one
	// simulated account. When Key and Keys are empty, any well-formed key
	// is accepted.
	Keys []string
	// NoRateRules turns the production rate rules off (see the package
	// documentation); by default a careless client gets banned.
	NoRateRules bool
	// PollTiming enforces the provider's documented poll timing
	// (provider.FirstPoll after the submit, then provider.PollIntervalMin
	// between polls of a task, divided by Speed): a poll sooner is answered
	// ERROR_TOO_MUCH_REQUESTS with an error_text saying why, and the task's
	// answer is kept for a later poll. Off by default in the library; on by
	// default in `captchafsm simulate`.
	PollTiming bool
	// PingbackClient sends pingbacks; nil means a client of the
	// simulator's own (10 s timeout, no redirects). Tests inject an
	// in-process transport here.
	PingbackClient *http.Client
	// TokenTTL, when positive, is how long an answer can be fetched after it
	// is ready (divided by Speed); later polls get ERROR_TOKEN_EXPIRED. Zero
	// means answers never expire.
	TokenTTL time.Duration
}

// Dist is a uniform distribution of durations over [Min, Max].
type Dist struct {
	Min, Max time.Duration
}

// Mix is the error mix: the probability of each code. Submit codes are drawn
// once per in.php request that passes validation (and replace its answer);
// poll codes are drawn once per accepted task and replace the task's token
// once it is ready (the task's final res.php answer).
type Mix struct {
	Submit map[string]float64 `json:"submit"`
	Poll   map[string]float64 `json:"poll"`
}

// DefaultMix is the mix of the error guide's frequency table: NO_SLOT
// occasional (3% of submits), ZERO_BALANCE rare (0.2%), BAD_PARAMETERS rare
// (0.3%), UNSOLVABLE about 1% of tasks.
func DefaultMix() Mix {
	return Mix{
		Submit: map[string]float64{
			"ERROR_NO_SLOT_AVAILABLE": 0.03,
			"ERROR_ZERO_BALANCE":      0.002,
			"ERROR_BAD_PARAMETERS":    0.003,
		},
		Poll: map[string]float64{
			"ERROR_CAPTCHA_UNSOLVABLE": 0.01,
		},
	}
}

// NoErrors is a mix without errors: every valid submit is accepted and every
// task is solved (rate rules, balance and faults still apply).
func NoErrors() Mix {
	return Mix{Submit: map[string]float64{}, Poll: map[string]float64{}}
}

func (m Mix) isZero() bool { return m.Submit == nil && m.Poll == nil }

// ParseMix reads a mix from JSON, as `simulate --mix FILE` does:
//
//	{"submit": {"ERROR_NO_SLOT_AVAILABLE": 0.05}, "poll": {"ERROR_CAPTCHA_UNSOLVABLE": 0.02}}
//
// A section left out keeps DefaultMix's; an empty section ({}) means no
// errors there. Codes the catalogue does not hold are allowed if they look
// like codes (transitions.IsCode). Probabilities are within 0..1 and each
// section's sum is at most 1. Errors name the offending key.
func ParseMix(data []byte) (Mix, error) {
	var raw struct {
		Submit map[string]float64 `json:"submit"`
		Poll   map[string]float64 `json:"poll"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Mix{}, fmt.Errorf("providersim: mix: %w", err)
	}
	if dec.More() {
		return Mix{}, errors.New("providersim: mix: trailing data after the JSON object")
	}
	def := DefaultMix()
	m := Mix{Submit: raw.Submit, Poll: raw.Poll}
	if m.Submit == nil {
		m.Submit = def.Submit
	}
	if m.Poll == nil {
		m.Poll = def.Poll
	}
	if err := m.Validate(); err != nil {
		return Mix{}, err
	}
	return m, nil
}

// Validate checks every code and probability; the error names the key.
func (m Mix) Validate() error {
	if err := validateSection("submit", m.Submit); err != nil {
		return err
	}
	if err := validateSection("poll", m.Poll); err != nil {
		return err
	}
	for code := range m.Poll {
		if code == "CAPCHA_NOT_READY" {
			return fmt.Errorf("providersim: mix: poll[%q]: not a final answer", code)
		}
	}
	return nil
}

func validateSection(name string, sec map[string]float64) error {
	sum := 0.0
	for _, code := range sortedKeys(sec) {
		p := sec[code]
		if !looksLikeCode(code) {
			return fmt.Errorf("providersim: mix: %s[%q]: not a provider code", name, code)
		}
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("providersim: mix: %s[%q]: probability %v is outside 0..1", name, code, p)
		}
		sum += p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("providersim: mix: %s: probabilities sum to %v, more than 1", name, sum)
	}
	return nil
}

// looksLikeCode accepts what the catalogue would recognise as a code and
// that fits in a '|'-joined batch answer.
func looksLikeCode(code string) bool {
	return code != "" && code == strings.TrimSpace(code) && !strings.ContainsAny(code, "|\r\n") &&
		transitions.IsCode(code)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FaultRates are the probabilities of transport faults for one kind of
// request. Their sum is at most 1.
type FaultRates struct {
	// HTTP500 answers 500 Internal Server Error before the request is
	// processed: nothing is charged.
	HTTP500 float64
	// HTML502 answers a 502 Bad Gateway HTML page (as a failing front proxy
	// does) before the request is processed: nothing is charged.
	HTML502 float64
	// Drop processes the request (a submit is accepted and charged) and then
	// loses the answer: the connection is closed without a response. This
	// is the submit whose outcome the client cannot know.
	Drop float64
	// Slow processes the request and holds the answer back for SlowDelay;
	// a client that gives up first cannot know the outcome either.
	Slow float64
	// SlowDelay is the hold of a Slow answer; 0 means 35 s, longer than the
	// default request timeout of 30 s.
	SlowDelay time.Duration
}

func (f FaultRates) any() bool { return f.HTTP500+f.HTML502+f.Drop+f.Slow > 0 }

func (f FaultRates) validate(field string) error {
	rates := []struct {
		name string
		p    float64
	}{{"HTTP500", f.HTTP500}, {"HTML502", f.HTML502}, {"Drop", f.Drop}, {"Slow", f.Slow}}
	sum := 0.0
	for _, r := range rates {
		if math.IsNaN(r.p) || r.p < 0 || r.p > 1 {
			return fmt.Errorf("providersim: Faults.%s.%s: probability %v is outside 0..1", field, r.name, r.p)
		}
		sum += r.p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("providersim: Faults.%s: probabilities sum to %v, more than 1", field, sum)
	}
	if f.SlowDelay < 0 {
		return fmt.Errorf("providersim: Faults.%s.SlowDelay: %v is negative", field, f.SlowDelay)
	}
	return nil
}

// Faults are the transport fault rates per kind of request: Submit (in.php),
// Poll (res.php get, get2 and anything else), Balance (getbalance) and Report
// (reportgood, reportbad).
type Faults struct {
	Submit, Poll, Balance, Report FaultRates
}

// DefaultCost is the price of one task of method when Config.Costs does not
// say: images 0.0005, reCAPTCHA, hCaptcha and GeeTest 0.00299, Turnstile
// 0.00145, FunCaptcha 0.0029, anything else 0.001.
func DefaultCost(method string) float64 {
	switch method {
	case "post", "base64":
		return 0.0005
	case "userrecaptcha", "hcaptcha", "geetest", "geetest_v4":
		return 0.00299
	case "turnstile":
		return 0.00145
	case "funcaptcha":
		return 0.0029
	}
	return 0.001
}

// DefaultSolveTime is the solve-time distribution of method when
// Config.SolveTime does not say, by its kind (provider.LookupMethod):
// images 2–8 s, token methods 12–40 s, text and audio 5–20 s.
func DefaultSolveTime(method string) Dist {
	m, _ := provider.LookupMethod(method)
	switch m.Kind {
	case provider.ImageMethod:
		return Dist{Min: 2 * time.Second, Max: 8 * time.Second}
	case provider.TokenMethod:
		return Dist{Min: 12 * time.Second, Max: 40 * time.Second}
	}
	return Dist{Min: 5 * time.Second, Max: 20 * time.Second}
}

// Validate checks the configuration; the error names the field. It never
// includes the key.
func (c Config) Validate() error {
	if math.IsNaN(c.Speed) || math.IsInf(c.Speed, 0) || c.Speed < 0 {
		return fmt.Errorf("providersim: Speed: %v is not a positive number", c.Speed)
	}
	if math.IsNaN(c.Balance) || math.IsInf(c.Balance, 0) || c.Balance < 0 {
		return fmt.Errorf("providersim: Balance: %v is negative or not a number", c.Balance)
	}
	for _, m := range sortedKeys(c.Costs) {
		if v := c.Costs[m]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("providersim: Costs[%q]: %v is negative or not a number", m, v)
		}
	}
	for _, m := range sortedKeys(c.SolveTime) {
		if d := c.SolveTime[m]; d.Min < 0 || d.Max < d.Min {
			return fmt.Errorf("providersim: SolveTime[%q]: want 0 <= Min <= Max, got %v..%v", m, d.Min, d.Max)
		}
	}
	if err := c.Mix.Validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		rates FaultRates
	}{{"Submit", c.Faults.Submit}, {"Poll", c.Faults.Poll}, {"Balance", c.Faults.Balance}, {"Report", c.Faults.Report}} {
		if err := f.rates.validate(f.name); err != nil {
			return err
		}
	}
	if c.Key != "" && provider.ValidateKey(c.Key) != nil {
		return errors.New("providersim: Key: not 32 hex characters")
	}
	for i, k := range c.Keys {
		if provider.ValidateKey(k) != nil {
			return fmt.Errorf("providersim: Keys[%d]: not 32 hex characters", i)
		}
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("providersim: TokenTTL: %v is negative", c.TokenTTL)
	}
	return nil
}
