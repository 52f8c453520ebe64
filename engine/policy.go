package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
	// provider bans more than 60 in 3 s).
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

// Validate reports the first field with a bad value, naming its policy key.
func (p Policy) Validate() error {
	durs := []struct {
		key string
		v   time.Duration
	}{
		{"first_poll_delay", p.FirstPollDelay}, {"first_poll_delay_token", p.FirstPollDelayToken},
		{"poll_interval", p.PollInterval}, {"poll_timeout", p.PollTimeout},
		{"backoff_base", p.BackoffBase}, {"backoff_max", p.BackoffMax},
		{"request_timeout", p.RequestTimeout}, {"store_failure_limit", p.StoreFailureLimit},
	}
	for _, d := range durs {
		if d.v < 0 {
			return fmt.Errorf("engine: policy: %s: must not be negative (got %s)", d.key, d.v)
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
	if p.Concurrency < 0 || p.Concurrency > 10000 {
		return fmt.Errorf("engine: policy: concurrency: must be between 1 and 10000 (got %d)", p.Concurrency)
	}
	if p.SubmitRate < 0 || p.SubmitRate > 20 {
		// More than 20/s risks MAX_USER_TURN (60 in.php requests in 3 s).
		return fmt.Errorf("engine: policy: submit_rate: must be above 0 and at most 20 per second (got %g)", p.SubmitRate)
	}
	if p.MaxRetries > 100 {
		return fmt.Errorf("engine: policy: max_retries: at most 100 (got %d)", p.MaxRetries)
	}
	if p.MaxResubmits > 100 {
		return fmt.Errorf("engine: policy: max_resubmits: at most 100 (got %d)", p.MaxResubmits)
	}
	if p.MaxInFlight < 0 || p.MaxInFlight > 1_000_000 {
		return fmt.Errorf("engine: policy: max_in_flight: must be between 0 (no bound) and 1000000 (got %d)", p.MaxInFlight)
	}
	if p.AccountProbeInterval > 0 && p.AccountProbeInterval < time.Second {
		return fmt.Errorf("engine: policy: account_probe_interval: at least 1s, or \"0s\" for no probing (got %s)", p.AccountProbeInterval)
	}
	for code, v := range p.RetryDelays {
		if _, ok := transitions.Lookup(code); !ok {
			return fmt.Errorf("engine: policy: retry_delays: unknown code %q", code)
		}
		if v < 0 {
			return fmt.Errorf("engine: policy: retry_delays.%s: must not be negative (got %s)", code, v)
		}
	}
	return nil
}

// policyJSON mirrors the policy file. Pointers tell an omitted key from a
// zero one.
type policyJSON struct {
	FirstPollDelay      *string           `json:"first_poll_delay"`
	FirstPollDelayToken *string           `json:"first_poll_delay_token"`
	PollInterval        *string           `json:"poll_interval"`
	PollTimeout         *string           `json:"poll_timeout"`
	MaxRetries          *int              `json:"max_retries"`
	BackoffBase         *string           `json:"backoff_base"`
	BackoffMax          *string           `json:"backoff_max"`
	MaxResubmits        *int              `json:"max_resubmits"`
	RequestTimeout      *string           `json:"request_timeout"`
	Concurrency         *int              `json:"concurrency"`
	SubmitRate          *float64          `json:"submit_rate"`
	RetryDelays         map[string]string `json:"retry_delays"`
}

// PolicyKeys lists the keys a policy file may hold.
func PolicyKeys() []string {
	return []string{"first_poll_delay", "first_poll_delay_token", "poll_interval", "poll_timeout",
		"max_retries", "backoff_base", "backoff_max", "max_resubmits", "request_timeout",
		"concurrency", "submit_rate", "retry_delays", "max_in_flight", "account_probe_interval", "store_failure_limit"}
}

// ParsePolicy reads a policy file (JSON). Omitted keys keep the defaults;
// unknown keys and bad values are errors naming the key.
func ParsePolicy(data []byte) (Policy, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Policy{}, fmt.Errorf("engine: policy: not a JSON object: %w", err)
	}
	known := map[string]bool{}
	for _, k := range PolicyKeys() {
		known[k] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Policy{}, fmt.Errorf("engine: policy: unknown key %q (known: %s)", unknown[0], strings.Join(PolicyKeys(), ", "))
	}
	p := DefaultPolicy()
	for k, v := range raw {
		if err := setPolicyKey(&p, k, v); err != nil {
			return Policy{}, err
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func setPolicyKey(p *Policy, key string, v json.RawMessage) error {
	dur := func(dst *time.Duration) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("engine: policy: %s: want a duration string such as \"5s\" (got %s)", key, bytes.TrimSpace(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("engine: policy: %s: %q is not a duration (such as \"5s\")", key, s)
		}
		if d <= 0 {
			return fmt.Errorf("engine: policy: %s: must be positive (got %s)", key, s)
		}
		*dst = d
		return nil
	}
	count := func(dst *int) error {
		var n int
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("engine: policy: %s: want a whole number (got %s)", key, bytes.TrimSpace(v))
		}
		if n < 0 {
			return fmt.Errorf("engine: policy: %s: must not be negative (got %d)", key, n)
		}
		if n == 0 {
			n = -1 // "none": the struct's zero means the default
		}
		*dst = n
		return nil
	}
	switch key {
	case "first_poll_delay":
		return dur(&p.FirstPollDelay)
	case "first_poll_delay_token":
		return dur(&p.FirstPollDelayToken)
	case "poll_interval":
		return dur(&p.PollInterval)
	case "poll_timeout":
		return dur(&p.PollTimeout)
	case "backoff_base":
		return dur(&p.BackoffBase)
	case "backoff_max":
		return dur(&p.BackoffMax)
	case "request_timeout":
		return dur(&p.RequestTimeout)
	case "store_failure_limit":
		return dur(&p.StoreFailureLimit)
	case "max_retries":
		return count(&p.MaxRetries)
	case "max_resubmits":
		return count(&p.MaxResubmits)
	case "concurrency":
		var n int
		if err := json.Unmarshal(v, &n); err != nil || n < 1 {
			return fmt.Errorf("engine: policy: concurrency: want a whole number of at least 1 (got %s)", bytes.TrimSpace(v))
		}
		p.Concurrency = n
	case "submit_rate":
		var f float64
		if err := json.Unmarshal(v, &f); err != nil || f <= 0 {
			return fmt.Errorf("engine: policy: submit_rate: want a number above 0 (got %s)", bytes.TrimSpace(v))
		}
		p.SubmitRate = f
	case "max_in_flight":
		var n int
		if err := json.Unmarshal(v, &n); err != nil || n < 0 {
			return fmt.Errorf("engine: policy: max_in_flight: want a whole number, 0 for no bound (got %s)", bytes.TrimSpace(v))
		}
		p.MaxInFlight = n
	case "account_probe_interval":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("engine: policy: %s: want a duration string such as \"60s\", or \"0s\" for no probing (got %s)", key, bytes.TrimSpace(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("engine: policy: %s: %q is not a duration (such as \"60s\", or \"0s\" for no probing)", key, s)
		}
		if d == 0 {
			d = -1 // no probing: the struct's zero means the default
		}
		p.AccountProbeInterval = d
	case "retry_delays":
		var m map[string]string
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("engine: policy: retry_delays: want an object of code → duration (got %s)", bytes.TrimSpace(v))
		}
		for code, s := range m {
			if _, ok := transitions.Lookup(code); !ok {
				return fmt.Errorf("engine: policy: retry_delays: unknown code %q", code)
			}
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return fmt.Errorf("engine: policy: retry_delays.%s: %q is not a positive duration", code, s)
			}
			p.RetryDelays[code] = d
		}
	}
	return nil
}
