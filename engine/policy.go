package engine

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/captchafsm/captchafsm/transitions"
)

// Policy holds the timing and limits of every solve. Its zero value means
// the defaults of DefaultPolicy; a field left zero keeps its default. For
// MaxRetries and MaxResubmits, which have a meaningful zero, a negative
// value means none.
type Policy struct {
	// FirstPollDelay is the wait between an accepted image submit and its
	// first poll (default 5s).
	FirstPollDelay time.Duration
	// FirstPollDelayToken is the same for reCAPTCHA-class token methods,
	// which take longer to solve (default 20s).
	FirstPollDelayToken time.Duration
	// PollInterval is the wait between two polls of a task (default 5s).
	PollInterval time.Duration
	// PollTimeout is how long a provider task may stay unanswered, counted
	// from its accept, before the task fails with POLL_TIMEOUT (default
	// 120s). It must exceed both first-poll delays.
	PollTimeout time.Duration
	// MaxRetries caps transient errors per task (default 3; negative: none).
	MaxRetries int
	// BackoffBase and BackoffMax bound the exponential backoff with jitter
	// used for transient errors without a delay of their own (3s, 30s).
	BackoffBase, BackoffMax time.Duration
	// MaxResubmits caps new provider tasks after UNSOLVABLE or TOKEN_EXPIRED
	// (default 2; negative: none).
	MaxResubmits int
	// RequestTimeout bounds each HTTP request (default 30s).
	RequestTimeout time.Duration
	// Concurrency bounds requests in flight (default 50).
	Concurrency int
	// SubmitRate bounds in.php requests per second (default 20; the
	// provider bans more than 60 in 3 s): no second holds more than
	// ⌈SubmitRate⌉, counted where requests leave. Submits due together
	// leave in groups of up to 3 (as many as the rate lets leave in
	// 200 ms), whose records share the store's commits; only whole groups
	// fit in a second (at 20: six groups of 3, 18/s). The engine never
	// lets more than 57 leave in any 3 s. In a fleet the rate is the
	// account's, shared: the engines book one slot at a time from the
	// store at 90 % of it, an average (docs/postgres.md).
	SubmitRate float64
	// RetryDelays overrides the catalogue's retry delay per code.
	RetryDelays map[string]time.Duration
	// MaxInFlight bounds the tasks submitted and not yet answered at the
	// provider (0: no bound). Plans sold by concurrent threads answer
	// ERROR_ZERO_BALANCE to a submit beyond them: set it to the plan's
	// threads and the rest wait, durable, in Submitting.
	MaxInFlight int
	// AccountProbeInterval is how often an open account breaker checks the
	// account with a free getbalance request and, when it is usable again,
	// releases the parked tasks itself (default 60s, the provider's advised
	// wait after ERROR_ZERO_BALANCE; negative: no probing, a person's
	// account-fixed only).
	AccountProbeInterval time.Duration
	// StoreFailureLimit is how long the store may fail to record in.php
	// answers before Engine.StoreFailure reports it (default 2m; the CLI's
	// run and resume then stop, exit 4). The engine keeps trying meanwhile
	// and sends no new in.php request.
	StoreFailureLimit time.Duration
}

// DefaultPolicy returns the defaults: the error guide's figures.
func DefaultPolicy() Policy {
	return Policy{
		FirstPollDelay:      5 * time.Second,
		FirstPollDelayToken: 20 * time.Second,
		PollInterval:        5 * time.Second,
		PollTimeout:         120 * time.Second,
		MaxRetries:          3,
		BackoffBase:         3 * time.Second,
		BackoffMax:          30 * time.Second,
		MaxResubmits:        2,
		RequestTimeout:      30 * time.Second,
		Concurrency:         50,
		SubmitRate:          20,
		RetryDelays: map[string]time.Duration{
			"ERROR_NO_SLOT_AVAILABLE": 5 * time.Second,
			"MAX_USER_TURN":           10 * time.Second,
		},
		AccountProbeInterval: time.Minute,
		StoreFailureLimit:    2 * time.Minute,
	}
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setD(&p.FirstPollDelay, d.FirstPollDelay)
	setD(&p.FirstPollDelayToken, d.FirstPollDelayToken)
	setD(&p.PollInterval, d.PollInterval)
	setD(&p.PollTimeout, d.PollTimeout)
	setD(&p.BackoffBase, d.BackoffBase)
	setD(&p.BackoffMax, d.BackoffMax)
	setD(&p.RequestTimeout, d.RequestTimeout)
	setD(&p.AccountProbeInterval, d.AccountProbeInterval)
	setD(&p.StoreFailureLimit, d.StoreFailureLimit)
	if p.MaxRetries == 0 {
		p.MaxRetries = d.MaxRetries
	}
	if p.MaxResubmits == 0 {
		p.MaxResubmits = d.MaxResubmits
	}
	if p.Concurrency == 0 {
		p.Concurrency = d.Concurrency
	}
	if p.SubmitRate == 0 {
		p.SubmitRate = d.SubmitRate
	}
	merged := make(map[string]time.Duration, len(d.RetryDelays)+len(p.RetryDelays))
	for k, v := range d.RetryDelays {
		merged[k] = v
	}
	for k, v := range p.RetryDelays {
		merged[k] = v
	}
	p.RetryDelays = merged
	return p
}

// Faster returns p with the waits it leaves to their defaults divided by
// speed: the first-poll delays, the poll interval and timeout, the
// backoff, and the catalogue's retry delays and ban lengths (each at
// least 1 ms; the request timeout stays at least 5 s). It is the policy
// for a simulator whose clock runs speed times faster
// (providersim.Config.Speed), as `captchafsm demo --speed` runs one. The
// fields p sets keep their values; a speed of 1 or less (or NaN) changes
// nothing. Never use it against the real provider: it polls sooner than
// the provider allows.
func (p Policy) Faster(speed float64) Policy {
	if !(speed > 1) {
		return p
	}
	scale := func(d time.Duration) time.Duration {
		return max(time.Duration(float64(d)/speed), time.Millisecond)
	}
	d := DefaultPolicy()
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&p.FirstPollDelay, scale(d.FirstPollDelay)},
		{&p.FirstPollDelayToken, scale(d.FirstPollDelayToken)},
		{&p.PollInterval, scale(d.PollInterval)},
		{&p.PollTimeout, scale(d.PollTimeout)},
		{&p.BackoffBase, scale(d.BackoffBase)},
		{&p.BackoffMax, scale(d.BackoffMax)},
		{&p.RequestTimeout, max(scale(d.RequestTimeout), 5*time.Second)},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	delays := make(map[string]time.Duration, len(p.RetryDelays))
	for code, v := range d.RetryDelays {
		delays[code] = scale(v)
	}
	for _, e := range transitions.Catalogue() {
		switch {
		case e.Ban > 0:
			delays[e.Code] = scale(e.Ban)
		case e.RetryDelay > 0:
			delays[e.Code] = scale(e.RetryDelay)
		case e.BackoffMin > 0:
			delays[e.Code] = scale(e.BackoffMin)
		}
	}
	for code, v := range p.RetryDelays {
		delays[code] = v
	}
	p.RetryDelays = delays
	return p
}

// Limits returns p's figures as the decision table reads them
// (transitions.Decide).
func (p Policy) Limits() transitions.Limits {
	return transitions.Limits{
		MaxRetries: p.MaxRetries, MaxResubmits: p.MaxResubmits,
		FirstPollDelay: p.FirstPollDelay, FirstPollDelayToken: p.FirstPollDelayToken,
		PollInterval: p.PollInterval, PollTimeout: p.PollTimeout,
		BackoffBase: p.BackoffBase, BackoffMax: p.BackoffMax,
		RetryDelays: p.RetryDelays,
	}
}

// PolicyBound is the range a policy key accepts, as a policy file writes
// it. Outside it a value has no use with any provider: a 1ns poll interval
// spins, a submit rate of 1e-9 per second makes the second task wait
// decades, a poll timeout of a century never fails a lost task. The
// bounds are wide enough for the simulator's fast clocks (demo --speed).
type PolicyBound struct {
	Key string
	// Default is the key's value when omitted, as a policy file writes it.
	Default  string
	Min, Max string
	// Note says what the key is bounded against, or "".
	Note string
}

// Bounds of the policy's values. The provider's own limits (60 in.php
// requests in 3 s, the res.php budget) are kept by the engine whatever the
// policy says; these keep the policy itself sensible.
const (
	minWait           = time.Millisecond
	maxWait           = 10 * time.Minute
	maxPollTimeout    = time.Hour
	maxBackoff        = time.Hour
	maxRetryDelay     = time.Hour
	minRequestTimeout = 100 * time.Millisecond
	maxRequestTimeout = 10 * time.Minute
	minSubmitRate     = 0.01
	maxSubmitRate     = 20
	maxConcurrency    = 10000
	maxCount          = 100
	maxInFlight       = 1_000_000
	minStoreFailure   = time.Second
	maxStoreFailure   = time.Hour
	minAccountProbe   = time.Second
	maxAccountProbe   = time.Hour
)

// durationBounds are the durations of a policy with their keys and ranges.
func (p Policy) durationBounds() []struct {
	key    string
	v      time.Duration
	lo, hi time.Duration
} {
	return []struct {
		key    string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"first_poll_delay", p.FirstPollDelay, minWait, maxWait},
		{"first_poll_delay_token", p.FirstPollDelayToken, minWait, maxWait},
		{"poll_interval", p.PollInterval, minWait, maxWait},
		{"poll_timeout", p.PollTimeout, minWait, maxPollTimeout},
		{"backoff_base", p.BackoffBase, minWait, maxWait},
		{"backoff_max", p.BackoffMax, minWait, maxBackoff},
		{"request_timeout", p.RequestTimeout, minRequestTimeout, maxRequestTimeout},
		{"store_failure_limit", p.StoreFailureLimit, minStoreFailure, maxStoreFailure},
	}
}

// PolicyBounds lists every policy key with the range it accepts, in the
// order of PolicyKeys (retry_delays: each code's delay).
func PolicyBounds() []PolicyBound {
	notes := map[string]string{
		"poll_timeout":        "the provider gives up on a task within minutes",
		"request_timeout":     "one HTTP request",
		"store_failure_limit": "then run and resume stop, exit 4",
	}
	var out []PolicyBound
	for _, d := range (Policy{}).durationBounds() {
		out = append(out, PolicyBound{Key: d.key, Min: d.lo.String(), Max: d.hi.String(), Note: notes[d.key]})
	}
	out = append(out,
		PolicyBound{Key: "max_retries", Min: "0", Max: fmt.Sprint(maxCount), Note: "0: no retry"},
		PolicyBound{Key: "max_resubmits", Min: "0", Max: fmt.Sprint(maxCount), Note: "0: no resubmit"},
		PolicyBound{Key: "concurrency", Min: "1", Max: fmt.Sprint(maxConcurrency), Note: "requests in flight"},
		PolicyBound{Key: "submit_rate", Min: fmt.Sprint(minSubmitRate), Max: fmt.Sprint(maxSubmitRate),
			Note: "in.php requests per second; the provider bans more than 60 in 3 s"},
		PolicyBound{Key: "retry_delays", Min: minWait.String(), Max: maxRetryDelay.String(), Note: "each code's delay"},
		PolicyBound{Key: "max_in_flight", Min: "0", Max: fmt.Sprint(maxInFlight), Note: "0: no bound"},
		PolicyBound{Key: "account_probe_interval", Min: minAccountProbe.String(), Max: maxAccountProbe.String(), Note: `"0s": no probing`},
	)
	d := DefaultPolicy()
	defaults := map[string]string{
		"max_retries": fmt.Sprint(d.MaxRetries), "max_resubmits": fmt.Sprint(d.MaxResubmits),
		"concurrency": fmt.Sprint(d.Concurrency), "submit_rate": fmt.Sprint(d.SubmitRate),
		"retry_delays": "the catalogue's", "max_in_flight": fmt.Sprint(d.MaxInFlight),
		"account_probe_interval": d.AccountProbeInterval.String(),
	}
	for _, b := range d.durationBounds() {
		defaults[b.key] = b.v.String()
	}
	order := map[string]int{}
	for i, k := range PolicyKeys() {
		order[k] = i
	}
	for i := range out {
		out[i].Default = defaults[out[i].Key]
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Key] < order[out[j].Key] })
	return out
}

// Validate reports the first field with a bad value, naming its policy key.
// A zero field means its default; any other value must be within the
// key's bounds (PolicyBounds).
func (p Policy) Validate() error {
	for _, d := range p.durationBounds() {
		switch {
		case d.v < 0:
			return fmt.Errorf("engine: policy: %s: must not be negative (got %s)", d.key, d.v)
		case d.v != 0 && (d.v < d.lo || d.v > d.hi):
			return fmt.Errorf("engine: policy: %s: must be between %s and %s (got %s)", d.key, d.lo, d.hi, d.v)
		}
	}
	if p.PollTimeout != 0 {
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"first_poll_delay", p.FirstPollDelay}, {"first_poll_delay_token", p.FirstPollDelayToken}} {
			if d.v >= p.PollTimeout {
				return fmt.Errorf("engine: policy: poll_timeout: %s is not above %s %s: every task would time out before its first poll", p.PollTimeout, d.key, d.v)
			}
		}
	}
	if p.BackoffMax != 0 && p.BackoffBase > p.BackoffMax {
		return fmt.Errorf("engine: policy: backoff_base: %s is above backoff_max %s", p.BackoffBase, p.BackoffMax)
	}
	if p.Concurrency < 0 || p.Concurrency > maxConcurrency {
		return fmt.Errorf("engine: policy: concurrency: must be between 1 and %d (got %d)", maxConcurrency, p.Concurrency)
	}
	switch {
	case p.SubmitRate < 0 || p.SubmitRate > maxSubmitRate || math.IsNaN(p.SubmitRate):
		// More than 20/s risks MAX_USER_TURN (60 in.php requests in 3 s).
		return fmt.Errorf("engine: policy: submit_rate: must be above 0 and at most %d per second (got %g)", maxSubmitRate, p.SubmitRate)
	case p.SubmitRate != 0 && p.SubmitRate < minSubmitRate:
		return fmt.Errorf("engine: policy: submit_rate: must be at least %g per second, one submit every %s (got %g: one every %s)",
			minSubmitRate, time.Duration(float64(time.Second)/minSubmitRate), p.SubmitRate, waitOf(p.SubmitRate))
	}
	if p.MaxRetries > maxCount {
		return fmt.Errorf("engine: policy: max_retries: at most %d (got %d)", maxCount, p.MaxRetries)
	}
	if p.MaxResubmits > maxCount {
		return fmt.Errorf("engine: policy: max_resubmits: at most %d (got %d)", maxCount, p.MaxResubmits)
	}
	if p.MaxInFlight < 0 || p.MaxInFlight > maxInFlight {
		return fmt.Errorf("engine: policy: max_in_flight: must be between 0 (no bound) and %d (got %d)", maxInFlight, p.MaxInFlight)
	}
	// A negative interval means no probing (the struct's zero is the default).
	if p.AccountProbeInterval > 0 && (p.AccountProbeInterval < minAccountProbe || p.AccountProbeInterval > maxAccountProbe) {
		return fmt.Errorf("engine: policy: account_probe_interval: must be between %s and %s, or \"0s\" for no probing (got %s)",
			minAccountProbe, maxAccountProbe, p.AccountProbeInterval)
	}
	for code, v := range p.RetryDelays {
		if _, ok := transitions.Lookup(code); !ok {
			return fmt.Errorf("engine: policy: retry_delays: unknown code %q", code)
		}
		if v < 0 {
			return fmt.Errorf("engine: policy: retry_delays.%s: must not be negative (got %s)", code, v)
		}
		if v != 0 && (v < minWait || v > maxRetryDelay) {
			return fmt.Errorf("engine: policy: retry_delays.%s: must be between %s and %s (got %s)", code, minWait, maxRetryDelay, v)
		}
	}
	return nil
}

// waitOf says how long one submit waits at rate per second, in words a
// person reads at once.
func waitOf(rate float64) string {
	secs := 1 / rate
	const year = 365.25 * 24 * 3600
	switch {
	case math.IsInf(secs, 0) || secs >= 2*year:
		return fmt.Sprintf("%.3g years", secs/year)
	case secs >= 2*24*3600:
		return fmt.Sprintf("%.3g days", secs/(24*3600))
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second).String()
}
