package engine

// Policy files: the JSON form of a Policy, its keys and their parsing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/transitions"
)

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
