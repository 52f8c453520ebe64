package transitions_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func limits() transitions.Limits {
	return transitions.Limits{
		MaxRetries: 3, MaxResubmits: 2,
		FirstPollDelay: 5 * time.Second, FirstPollDelayToken: 20 * time.Second,
		PollInterval: 5 * time.Second, PollTimeout: 120 * time.Second,
		BackoffBase: 3 * time.Second, BackoffMax: 30 * time.Second,
		RetryDelays: map[string]time.Duration{"ERROR_NO_SLOT_AVAILABLE": 5 * time.Second},
	}
}

// TestDecide pins one decision per row of the table, and the rows' order
// where two could match.
func TestDecide(t *testing.T) {
	type want struct {
		event   transitions.Event
		code    string
		next    time.Duration // from t0; -1: none; -2: unchanged
		change  transitions.Change
		effects []transitions.Effect
		charged bool
		detail  string
	}
	const none, keep = -1, -2
	polling := func(in transitions.Input) transitions.Input {
		in.State = states.Polling
		in.PollSince = t0.Add(-10 * time.Second)
		return in
	}
	tests := []struct {
		name string
		in   transitions.Input
		want want
	}{
		{"submit in doubt", transitions.Input{State: states.Submitting, What: transitions.Due, InDoubt: true, BreakerOpen: true},
			want{event: transitions.PossiblyCharged, next: keep, charged: true}},
		{"submit parked", transitions.Input{State: states.Submitting, What: transitions.Due, BreakerOpen: true},
			want{event: transitions.BreakerOpen, code: transitions.CodeBreakerOpen, next: none}},
		{"submit", transitions.Input{State: states.Submitting, What: transitions.Due},
			want{event: transitions.SubmitSending, next: keep, change: transitions.CountSubmit, effects: []transitions.Effect{transitions.Send}}},
		{"accepted image", transitions.Input{State: states.Submitting, What: transitions.Accepted},
			want{event: transitions.SubmitAccepted, next: 5 * time.Second, change: transitions.StartPolling}},
		{"accepted token method", transitions.Input{State: states.Submitting, What: transitions.Accepted, TokenMethod: true},
			want{event: transitions.SubmitAccepted, next: 20 * time.Second, change: transitions.StartPolling}},
		{"in.php ban", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "MAX_USER_TURN", Retries: 3},
			want{event: transitions.RateLimited, code: "MAX_USER_TURN", next: 10 * time.Second, effects: []transitions.Effect{transitions.Ban}}},
		{"in.php transient", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_NO_SLOT_AVAILABLE", Retries: 1},
			want{event: transitions.TransientError, code: "ERROR_NO_SLOT_AVAILABLE", next: 5 * time.Second, change: transitions.CountRetry,
				detail: "retry 2 of 3 in 5s"}},
		{"in.php transient spent", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_NO_SLOT_AVAILABLE", Retries: 3},
			want{event: transitions.RetriesExhausted, code: "ERROR_NO_SLOT_AVAILABLE", next: none, detail: "gave up after 3 retries"}},
		{"transport, possibly charged", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: transitions.CodeTransport,
			Charged: true, Detail: "in.php: connection reset"},
			want{event: transitions.TransientError, code: transitions.CodeTransport, next: 3 * time.Second, change: transitions.CountRetry,
				charged: true, detail: "in.php: connection reset; retry 1 of 3 in 3s"}},
		{"in.php permanent", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_PAGEURL"},
			want{event: transitions.PermanentError, code: "ERROR_PAGEURL", next: none,
				detail: "The pageurl parameter is missing or invalid."}},
		{"invalid request is permanent", transitions.Input{State: states.Submitting, What: transitions.Answer,
			Code: transitions.CodeInvalidRequest, Detail: "pageurl: missing"},
			want{event: transitions.PermanentError, code: transitions.CodeInvalidRequest, next: none, detail: "pageurl: missing"}},
		{"in.php account", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_ZERO_BALANCE"},
			want{event: transitions.AccountError, code: "ERROR_ZERO_BALANCE", next: none, effects: []transitions.Effect{transitions.OpenBreaker},
				detail: "The account has no funds (or no free threads)."}},
		{"in.php account with a ban", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR: 1002"},
			want{event: transitions.AccountError, code: "ERROR: 1002", next: none,
				effects: []transitions.Effect{transitions.OpenBreaker, transitions.Ban},
				detail:  "120 ERROR_ZERO_BALANCE answers in a minute: blocked for 5 minutes."}},
		{"in.php not ready is unexpected", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "CAPCHA_NOT_READY"},
			want{event: transitions.UnknownError, code: "CAPCHA_NOT_READY", next: none, detail: "unexpected answer to in.php"}},
		{"in.php unknown", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_BRAND_NEW"},
			want{event: transitions.UnknownError, code: "ERROR_BRAND_NEW", next: none, detail: "unexpected answer to in.php"}},
		{"cancel", transitions.Input{State: states.Backoff, What: transitions.Cancel},
			want{event: transitions.Cancelled, code: transitions.CodeCancelled, next: none, detail: "cancelled by the caller"}},
		{"backoff parked", transitions.Input{State: states.Backoff, What: transitions.Due, BreakerOpen: true, Code: "ERROR_NO_SLOT_AVAILABLE"},
			want{event: transitions.BreakerOpen, code: transitions.CodeBreakerOpen, next: none}},
		{"backoff over", transitions.Input{State: states.Backoff, What: transitions.Due, Code: "ERROR_NO_SLOT_AVAILABLE"},
			want{event: transitions.BackoffElapsed, code: "ERROR_NO_SLOT_AVAILABLE", next: 0}},
		{"token", polling(transitions.Input{What: transitions.Token}),
			want{event: transitions.Solved, next: none, change: transitions.TakeToken}},
		{"res.php ban beats the timeout", polling(transitions.Input{What: transitions.Answer, Code: "ERROR: 1005",
			PollSince: t0.Add(-time.Hour)}),
			want{event: transitions.RateLimited, code: "ERROR: 1005", next: 10 * time.Minute, effects: []transitions.Effect{transitions.Ban}}},
		{"not ready", polling(transitions.Input{What: transitions.Answer, Code: "CAPCHA_NOT_READY"}),
			want{event: transitions.NotReady, code: "CAPCHA_NOT_READY", next: 5 * time.Second}},
		{"res.php transient", polling(transitions.Input{What: transitions.Answer, Code: "ERROR_TOO_MUCH_REQUESTS", Jitter: 0.5}),
			want{event: transitions.TransientError, code: "ERROR_TOO_MUCH_REQUESTS", next: 5 * time.Second}},
		{"res.php transient, no retry counted", polling(transitions.Input{What: transitions.Answer, Code: transitions.CodeTransport, Retries: 3}),
			want{event: transitions.TransientError, code: transitions.CodeTransport, next: 5 * time.Second}},
		{"resubmit", polling(transitions.Input{What: transitions.Answer, Code: "ERROR_CAPTCHA_UNSOLVABLE", Resubmits: 1}),
			want{event: transitions.ResubmitNeeded, code: "ERROR_CAPTCHA_UNSOLVABLE", next: 0, change: transitions.CountResubmit,
				detail: "resubmit 2 of 2"}},
		{"resubmits spent", polling(transitions.Input{What: transitions.Answer, Code: "ERROR_TOKEN_EXPIRED", Resubmits: 2}),
			want{event: transitions.ResubmitsExhausted, code: "ERROR_TOKEN_EXPIRED", next: none, detail: "gave up after 2 resubmits"}},
		{"res.php permanent", polling(transitions.Input{What: transitions.Answer, Code: "ERROR_WRONG_CAPTCHA_ID"}),
			want{event: transitions.PermanentError, code: "ERROR_WRONG_CAPTCHA_ID", next: none, detail: "No task has this id."}},
		{"res.php account", polling(transitions.Input{What: transitions.Answer, Code: "ERROR_IP_NOT_ALLOWED"}),
			want{event: transitions.AccountError, code: "ERROR_IP_NOT_ALLOWED", next: none, effects: []transitions.Effect{transitions.OpenBreaker},
				detail: "This IP address is not on the account's whitelist."}},
		{"res.php unknown", polling(transitions.Input{What: transitions.Answer, Code: "AB_CD"}),
			want{event: transitions.UnknownError, code: "AB_CD", next: none, detail: "unknown answer from res.php"}},
		{"resubmitting parked", transitions.Input{State: states.Resubmitting, What: transitions.Due, BreakerOpen: true},
			want{event: transitions.BreakerOpen, code: transitions.CodeBreakerOpen, next: none}},
		{"resubmitting", transitions.Input{State: states.Resubmitting, What: transitions.Due},
			want{event: transitions.ResubmitStarted, next: 0, change: transitions.NewProviderTask, detail: "new task with the same parameters"}},
		{"account fixed", transitions.Input{State: states.NeedsAccountFix, What: transitions.Fixed},
			want{event: transitions.AccountFixed, next: 0, detail: "account fixed"}},
		{"deadline beats the breaker", transitions.Input{State: states.Submitting, What: transitions.Due, BreakerOpen: true, Deadline: t0},
			want{event: transitions.DeadlinePassed, code: transitions.CodeDeadline, next: none, detail: "deadline 2026-11-29T12:00:00Z passed"}},
		{"deadline with a submit in doubt", transitions.Input{State: states.Submitting, What: transitions.Due, InDoubt: true, Deadline: t0.Add(-time.Second)},
			want{event: transitions.DeadlinePassed, code: transitions.CodeDeadline, next: none, charged: true,
				detail: "deadline 2026-11-29T11:59:59Z passed; a submit was being sent: the provider may have charged it"}},
		{"deadline in a backoff", transitions.Input{State: states.Backoff, What: transitions.Due, Code: "ERROR_NO_SLOT_AVAILABLE", Deadline: t0},
			want{event: transitions.DeadlinePassed, code: transitions.CodeDeadline, next: none}},
		{"deadline while polling", polling(transitions.Input{What: transitions.Due, Deadline: t0}),
			want{event: transitions.DeadlinePassed, code: transitions.CodeDeadline, next: none}},
		{"deadline before a resubmit", transitions.Input{State: states.Resubmitting, What: transitions.Due, Deadline: t0},
			want{event: transitions.DeadlinePassed, code: transitions.CodeDeadline, next: none}},
		{"deadline ahead: submit", transitions.Input{State: states.Submitting, What: transitions.Due, Deadline: t0.Add(time.Nanosecond)},
			want{event: transitions.SubmitSending, next: keep, change: transitions.CountSubmit, effects: []transitions.Effect{transitions.Send}}},
		{"a wait ends at the deadline", polling(transitions.Input{What: transitions.Answer, Code: "CAPCHA_NOT_READY", Deadline: t0.Add(2 * time.Second)}),
			want{event: transitions.NotReady, code: "CAPCHA_NOT_READY", next: 2 * time.Second}},
		{"a backoff ends at the deadline", transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_NO_SLOT_AVAILABLE",
			Deadline: t0.Add(time.Second)},
			want{event: transitions.TransientError, code: "ERROR_NO_SLOT_AVAILABLE", next: time.Second, change: transitions.CountRetry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now, in.Limits = t0, limits()
			d, err := transitions.Decide(in)
			require.NoError(t, err)
			assert.Equal(t, tt.want.event, d.Event)
			assert.Equal(t, tt.want.code, d.Code)
			switch tt.want.next {
			case none:
				assert.True(t, d.Next.IsZero(), "no next action: %s", d.Next)
				assert.False(t, d.KeepNext)
			case keep:
				assert.True(t, d.KeepNext)
			default:
				assert.Equal(t, t0.Add(tt.want.next), d.Next)
			}
			assert.Equal(t, tt.want.change, d.Change)
			assert.ElementsMatch(t, tt.want.effects, d.Effects)
			assert.Equal(t, tt.want.charged, d.Charged)
			if tt.want.detail != "" {
				assert.Equal(t, tt.want.detail, d.Detail)
			}
			to, err := transitions.Next(in.State, d.Event)
			require.NoError(t, err, "every decision is an edge of the table")
			if d.Event == transitions.Solved {
				assert.Equal(t, states.Done, to)
			}
		})
	}
}

// TestDecideBan: a ban's order covers the endpoints the code answers on,
// its length comes from the catalogue (or the policy's delay for the code),
// and a ban on res.php pauses the task's poll timeout.
func TestDecideBan(t *testing.T) {
	in := transitions.Input{State: states.Polling, What: transitions.Answer, Code: "ERROR: 1005", PollSince: t0, Now: t0, Limits: limits()}
	d, err := transitions.Decide(in)
	require.NoError(t, err)
	assert.Equal(t, transitions.BanOrder{Code: "ERROR: 1005", Until: t0.Add(10 * time.Minute), Length: 10 * time.Minute, Polls: true}, d.Ban)
	assert.Equal(t, 10*time.Minute, d.TimeoutShift)

	in = transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "MAX_USER_TURN", Now: t0, Limits: limits()}
	in.Limits.RetryDelays = map[string]time.Duration{"MAX_USER_TURN": 12 * time.Second}
	d, err = transitions.Decide(in)
	require.NoError(t, err)
	assert.Equal(t, transitions.BanOrder{Code: "MAX_USER_TURN", Until: t0.Add(12 * time.Second), Length: 12 * time.Second, Submits: true}, d.Ban)
	assert.Zero(t, d.TimeoutShift, "no poll clock runs in Submitting")
}

// TestDecideTimeout: not-ready and transient answers past poll_timeout end
// the task; the limit is inclusive.
func TestDecideTimeout(t *testing.T) {
	for _, code := range []string{"CAPCHA_NOT_READY", "ERROR_SERVER_ERROR", transitions.CodeTransport} {
		in := transitions.Input{State: states.Polling, What: transitions.Answer, Code: code,
			PollSince: t0.Add(-120 * time.Second), Now: t0, Limits: limits()}
		d, err := transitions.Decide(in)
		require.NoError(t, err)
		assert.Equal(t, transitions.PollTimeout, d.Event, code)
		assert.Equal(t, transitions.CodePollTimeout, d.Code, code)
		assert.Equal(t, "no answer within 2m0s", d.Detail[len(d.Detail)-len("no answer within 2m0s"):])
		in.PollSince = in.PollSince.Add(time.Nanosecond)
		d, err = transitions.Decide(in)
		require.NoError(t, err)
		assert.NotEqual(t, transitions.PollTimeout, d.Event, code)
	}
}

// TestRulesCoverEveryAnswer: every code of the catalogue and an unknown
// one meet a rule in both states that receive answers, and every rule is
// an edge of the transition table.
func TestRulesCoverEveryAnswer(t *testing.T) {
	for _, r := range transitions.Rules() {
		_, err := transitions.Next(r.From, r.Event)
		assert.NoError(t, err, "rule %s on %s → %s", r.From, r.What, r.Event)
	}
	codes := append(transitions.Codes(), "ERROR_NEVER_SEEN", "")
	for _, st := range []states.State{states.Submitting, states.Polling} {
		for _, code := range codes {
			for _, retries := range []int{0, 5} {
				in := transitions.Input{State: st, What: transitions.Answer, Code: code, Retries: retries, Resubmits: retries,
					PollSince: t0, Now: t0, Limits: limits()}
				_, err := transitions.Decide(in)
				assert.NoError(t, err, "%s answered %q", st, code)
			}
		}
	}
	for _, st := range []states.State{states.Submitting, states.Backoff, states.Polling, states.Resubmitting} {
		_, err := transitions.Decide(transitions.Input{State: st, What: transitions.Cancel, Now: t0, Limits: limits()})
		assert.NoError(t, err, "cancel in %s", st)
	}
	_, err := transitions.Decide(transitions.Input{State: states.Done, What: transitions.Cancel, Now: t0})
	assert.ErrorIs(t, err, transitions.ErrNoRule)
	// A polling task is due only for its deadline: no row sends it a poll.
	_, err = transitions.Decide(transitions.Input{State: states.Polling, What: transitions.Due, Now: t0, Deadline: t0.Add(time.Second)})
	assert.ErrorIs(t, err, transitions.ErrNoRule)
}

// TestDecideTaskLimits: a task's own limits, given in Limits in place of
// the policy's, decide when its retries and resubmits are spent.
func TestDecideTaskLimits(t *testing.T) {
	in := transitions.Input{State: states.Submitting, What: transitions.Answer, Code: "ERROR_NO_SLOT_AVAILABLE", Retries: 3, Now: t0, Limits: limits()}
	in.Limits.MaxRetries = 5
	d, err := transitions.Decide(in)
	require.NoError(t, err)
	assert.Equal(t, transitions.TransientError, d.Event)
	assert.Equal(t, "retry 4 of 5 in 5s", d.Detail)
	in.Limits.MaxRetries = -1 // none
	in.Retries = 0
	d, err = transitions.Decide(in)
	require.NoError(t, err)
	assert.Equal(t, transitions.RetriesExhausted, d.Event)

	in = transitions.Input{State: states.Polling, What: transitions.Answer, Code: "ERROR_CAPTCHA_UNSOLVABLE", PollSince: t0, Now: t0, Limits: limits()}
	in.Limits.MaxResubmits = -1
	d, err = transitions.Decide(in)
	require.NoError(t, err)
	assert.Equal(t, transitions.ResubmitsExhausted, d.Event)
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 3 * time.Second},
		{2, 0.5, 6 * time.Second},
		{3, 0.5, 12 * time.Second},
		{5, 0.5, 30 * time.Second},
		{1, 0, 3 * time.Second},                // jitter kept inside [lo, hi]
		{5, 0.999, 30 * time.Second},           // and at the cap
		{2, 0, 4800 * time.Millisecond},        // −20 %
		{2, 0.999, 7197600 * time.Microsecond}, // nearly +20 %
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, transitions.Backoff(3*time.Second, 30*time.Second, tt.n, tt.r), "n=%d r=%g", tt.n, tt.r)
	}
}
