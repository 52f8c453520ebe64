package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func tr(from, to states.State, ev transitions.Event, mut func(*engine.Task, *persist.Record)) engine.Transition {
	task := engine.Task{ID: "t1", State: to, Created: t0}
	rec := persist.Record{At: t0.Add(time.Second), From: from, To: to, Event: ev}
	if mut != nil {
		mut(&task, &rec)
	}
	return engine.Transition{Task: task, Record: rec}
}

func TestObserveTransitions(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Observe(tr("", states.Submitting, transitions.Created, nil))
	m.Observe(tr(states.Submitting, states.Submitting, transitions.SubmitSending, nil))
	m.Observe(tr(states.Submitting, states.Submitting, transitions.SubmitSending, nil))
	m.Observe(tr(states.Submitting, states.Polling, transitions.SubmitAccepted, nil))

	const want = `
# HELP captchafsm_transitions_total Committed transitions of tasks, by source state, target state and event.
# TYPE captchafsm_transitions_total counter
captchafsm_transitions_total{event="created",from="",to="Submitting"} 1
captchafsm_transitions_total{event="submit_accepted",from="Submitting",to="Polling"} 1
captchafsm_transitions_total{event="submit_sending",from="Submitting",to="Submitting"} 2
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "captchafsm_transitions_total"))
}

func TestObservePossiblyCharged(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Observe(tr(states.Submitting, states.Submitting, transitions.PossiblyCharged, func(_ *engine.Task, r *persist.Record) {
		r.PossiblyCharged = true
	}))
	m.Observe(tr(states.Submitting, states.Backoff, transitions.TransientError, func(_ *engine.Task, r *persist.Record) {
		r.PossiblyCharged = true
	}))
	m.Observe(tr(states.Submitting, states.Backoff, transitions.TransientError, nil))
	assert.InDelta(t, 2, value(t, m, "captchafsm_possibly_charged_total", nil), 0)
}

func TestObserveSolveDurationAndCost(t *testing.T) {
	m := metrics.New(metrics.Options{Buckets: []float64{5, 30}})
	done := func(after time.Duration, cost string) engine.Transition {
		return tr(states.Polling, states.Done, transitions.Solved, func(task *engine.Task, r *persist.Record) {
			r.At = t0.Add(after)
			task.Cost = cost
		})
	}
	m.Observe(done(2*time.Second, "0.001"))
	m.Observe(done(20*time.Second, "0.0025"))
	m.Observe(done(60*time.Second, ""))       // the engine left the price empty
	m.Observe(done(3*time.Second, "garbage")) // not counted as cost
	// A failure is no solve.
	m.Observe(tr(states.Polling, states.Failed, transitions.PollTimeout, nil))

	const want = `
# HELP captchafsm_solve_duration_seconds Time from a task's creation to Done.
# TYPE captchafsm_solve_duration_seconds histogram
captchafsm_solve_duration_seconds_bucket{le="5"} 2
captchafsm_solve_duration_seconds_bucket{le="30"} 3
captchafsm_solve_duration_seconds_bucket{le="+Inf"} 4
captchafsm_solve_duration_seconds_sum 85
captchafsm_solve_duration_seconds_count 4
# HELP captchafsm_cost_total Sum of the prices the provider reported for solved tasks, in its currency (0 unless the engine fetches costs).
# TYPE captchafsm_cost_total counter
captchafsm_cost_total 0.0035
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"captchafsm_solve_duration_seconds", "captchafsm_cost_total"))
}

type countFunc func(context.Context) (map[states.State]int, error)

func (f countFunc) Count(ctx context.Context) (map[states.State]int, error) { return f(ctx) }

func TestTasksGaugeReadsStoreAtScrape(t *testing.T) {
	counts := map[states.State]int{states.Polling: 3, states.Done: 10}
	m := metrics.New(metrics.Options{Store: countFunc(func(ctx context.Context) (map[states.State]int, error) {
		_, hasDeadline := ctx.Deadline()
		assert.True(t, hasDeadline, "a scrape must not wait on the store forever")
		return counts, nil
	})})
	want := func(polling, done int) string {
		return fmt.Sprintf(`
# HELP captchafsm_tasks Tasks in the store, by state.
# TYPE captchafsm_tasks gauge
captchafsm_tasks{state="Backoff"} 0
captchafsm_tasks{state="Done"} %d
captchafsm_tasks{state="Failed"} 0
captchafsm_tasks{state="NeedsAccountFix"} 0
captchafsm_tasks{state="Polling"} %d
captchafsm_tasks{state="Resubmitting"} 0
captchafsm_tasks{state="Submitting"} 0
`, done, polling)
	}
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want(3, 10)), "captchafsm_tasks"))
	counts = map[states.State]int{states.Polling: 1, states.Done: 12}
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want(1, 12)), "captchafsm_tasks"))
}

func TestTasksGaugeStoreErrorFailsTheScrape(t *testing.T) {
	m := metrics.New(metrics.Options{Store: countFunc(func(context.Context) (map[states.State]int, error) {
		return nil, persist.ErrClosed
	})})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	_, err := reg.Gather()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "count tasks")
	assert.Contains(t, err.Error(), persist.ErrClosed.Error())
}

func TestTasksGaugeAbsentWithoutStore(t *testing.T) {
	m := metrics.New(metrics.Options{})
	n, err := testutil.GatherAndCount(m.Registry(), "captchafsm_tasks")
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestBreakerGauge(t *testing.T) {
	m := metrics.New(metrics.Options{})
	breaker := func(m *metrics.Metrics) float64 { return value(t, m, "captchafsm_breaker_open", nil) }
	assert.InDelta(t, 0, breaker(m), 0, "no breaker function: closed")
	open := true
	m.SetBreaker(func() bool { return open })
	assert.InDelta(t, 1, breaker(m), 0)
	open = false
	assert.InDelta(t, 0, breaker(m), 0)

	m2 := metrics.New(metrics.Options{Breaker: func() bool { return true }})
	assert.InDelta(t, 1, breaker(m2), 0)
}

// fakeAPI answers with whatever the test sets.
type fakeAPI struct {
	submitErr error
	answers   []provider.Answer
	pollErr   error
}

func (f *fakeAPI) Submit(context.Context, provider.Request) (string, error) {
	if f.submitErr != nil {
		return "", f.submitErr
	}
	return "123", nil
}

func (f *fakeAPI) Poll(context.Context, []string) ([]provider.Answer, error) {
	return f.answers, f.pollErr
}

type fakeCostAPI struct {
	fakeAPI
	costErr error
}

func (f *fakeCostAPI) Cost(context.Context, string) (string, string, error) {
	return "tok", "0.001", f.costErr
}

func apiErr(endpoint, code string) error {
	return &provider.APIError{Endpoint: endpoint, Code: code, Class: transitions.Classify(code)}
}

func TestInstrumentSubmit(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		outcome string
		answer  string // `code="...",class="..."`, "" for none
		ban     string
	}{
		{"ok", nil, "ok", `class="ok",code="OK"`, ""},
		{"transient code", apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), "api_error", `class="transient",code="ERROR_NO_SLOT_AVAILABLE"`, ""},
		{"account code", fmt.Errorf("wrapped: %w", apiErr("in.php", "ERROR_ZERO_BALANCE")), "api_error", `class="account",code="ERROR_ZERO_BALANCE"`, ""},
		{"ban", apiErr("in.php", "ERROR: 1001"), "api_error", `class="transient",code="ERROR: 1001"`, "ERROR: 1001"},
		{"unknown code", apiErr("in.php", "ERROR_SOMETHING_NEW_42"), "api_error", `class="unknown",code="other"`, ""},
		{"transport", &provider.TransportError{Endpoint: "in.php", Status: 502}, "transport_error", "", ""},
		{"invalid", &provider.FieldError{Field: "pageurl", Problem: "is required"}, "invalid", "", ""},
		{"cancelled", context.Canceled, "error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			api := m.InstrumentAPI(&fakeAPI{submitErr: tt.err})
			id, err := api.Submit(context.Background(), provider.Request{Method: "post"})
			if tt.err == nil {
				require.NoError(t, err)
				assert.Equal(t, "123", id)
			} else {
				require.ErrorIs(t, err, tt.err, "the wrapper must return the API's error untouched")
			}
			want := "# HELP captchafsm_requests_total Requests to the provider's API, by endpoint and outcome (ok, api_error, transport_error, invalid, error).\n" +
				"# TYPE captchafsm_requests_total counter\n" +
				fmt.Sprintf("captchafsm_requests_total{endpoint=\"in.php\",outcome=%q} 1\n", tt.outcome)
			require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "captchafsm_requests_total"))
			answers := ""
			if tt.answer != "" {
				answers = "# HELP captchafsm_api_answers_total Answers of the provider's API, by endpoint, code (OK for a success, other for a code the catalogue does not hold) and class.\n" +
					"# TYPE captchafsm_api_answers_total counter\n" +
					"captchafsm_api_answers_total{" + tt.answer + `,endpoint="in.php"} 1` + "\n"
			}
			require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(answers), "captchafsm_api_answers_total"))
			bans := ""
			if tt.ban != "" {
				bans = "# HELP captchafsm_ban_waits_total Ban codes answered by the API, each making the engine wait the ban out, by code.\n" +
					"# TYPE captchafsm_ban_waits_total counter\n" +
					fmt.Sprintf("captchafsm_ban_waits_total{code=%q} 1\n", tt.ban)
			}
			require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(bans), "captchafsm_ban_waits_total"))
		})
	}
}

func TestInstrumentPollCountsEachAnswer(t *testing.T) {
	m := metrics.New(metrics.Options{})
	f := &fakeAPI{answers: []provider.Answer{
		{Token: "tok-1"},
		{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady},
		{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady},
		{Code: "ERROR_CAPTCHA_UNSOLVABLE", Class: transitions.ClassResubmit},
		{Code: "SOMETHING ODD", Class: transitions.ClassUnknown},
	}}
	api := m.InstrumentAPI(f)
	got, err := api.Poll(context.Background(), []string{"1", "2", "3", "4", "5"})
	require.NoError(t, err)
	assert.Equal(t, f.answers, got)

	f.answers, f.pollErr = nil, apiErr("res.php", "MAX_USER_TURN")
	_, err = api.Poll(context.Background(), []string{"1", "2"})
	require.Error(t, err)
	f.pollErr = &provider.TransportError{Endpoint: "res.php", Err: io.ErrUnexpectedEOF}
	_, err = api.Poll(context.Background(), []string{"1"})
	require.Error(t, err)

	const want = `
# HELP captchafsm_api_answers_total Answers of the provider's API, by endpoint, code (OK for a success, other for a code the catalogue does not hold) and class.
# TYPE captchafsm_api_answers_total counter
captchafsm_api_answers_total{class="not_ready",code="CAPCHA_NOT_READY",endpoint="res.php"} 2
captchafsm_api_answers_total{class="ok",code="OK",endpoint="res.php"} 1
captchafsm_api_answers_total{class="resubmit",code="ERROR_CAPTCHA_UNSOLVABLE",endpoint="res.php"} 1
captchafsm_api_answers_total{class="transient",code="MAX_USER_TURN",endpoint="res.php"} 1
captchafsm_api_answers_total{class="unknown",code="other",endpoint="res.php"} 1
# HELP captchafsm_requests_total Requests to the provider's API, by endpoint and outcome (ok, api_error, transport_error, invalid, error).
# TYPE captchafsm_requests_total counter
captchafsm_requests_total{endpoint="res.php",outcome="api_error"} 1
captchafsm_requests_total{endpoint="res.php",outcome="ok"} 1
captchafsm_requests_total{endpoint="res.php",outcome="transport_error"} 1
# HELP captchafsm_ban_waits_total Ban codes answered by the API, each making the engine wait the ban out, by code.
# TYPE captchafsm_ban_waits_total counter
captchafsm_ban_waits_total{code="MAX_USER_TURN"} 1
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"captchafsm_api_answers_total", "captchafsm_requests_total", "captchafsm_ban_waits_total"))
}

func TestInstrumentKeepsCostAPI(t *testing.T) {
	m := metrics.New(metrics.Options{})
	bare, ok := m.InstrumentAPI(&fakeAPI{}).(engine.CostAPI)
	require.True(t, ok)
	_, _, err := bare.Cost(context.Background(), "1")
	assert.ErrorIs(t, err, engine.ErrUnsupported, "an API without Cost says so")
	_, err = bare.(engine.BalanceAPI).Balance(context.Background())
	assert.ErrorIs(t, err, engine.ErrUnsupported, "nor Balance")
	assert.ErrorIs(t, bare.(engine.ReportAPI).Report(context.Background(), "1", true), engine.ErrUnsupported, "nor Report")

	f := &fakeCostAPI{}
	wrapped, ok := m.InstrumentAPI(f).(engine.CostAPI)
	require.True(t, ok, "an API with Cost must keep it, or FetchCost stops working")
	tok, cost, err := wrapped.Cost(context.Background(), "1")
	require.NoError(t, err)
	assert.Equal(t, []string{"tok", "0.001"}, []string{tok, cost})
	f.costErr = apiErr("res.php", "CAPCHA_NOT_READY")
	_, _, err = wrapped.Cost(context.Background(), "1")
	require.Error(t, err)
	assert.InDelta(t, 1, value(t, m, "captchafsm_requests_total", map[string]string{"endpoint": "res.php", "outcome": "ok"}), 0)
	assert.InDelta(t, 1, value(t, m, "captchafsm_requests_total", map[string]string{"endpoint": "res.php", "outcome": "api_error"}), 0)
}

func TestLintAndHandler(t *testing.T) {
	m := metrics.New(metrics.Options{Store: countFunc(func(context.Context) (map[states.State]int, error) {
		return map[states.State]int{states.Done: 1}, nil
	})})
	m.Observe(tr(states.Polling, states.Done, transitions.Solved, nil))
	problems, err := testutil.CollectAndLint(m)
	require.NoError(t, err)
	assert.Empty(t, problems)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`captchafsm_tasks{state="Done"} 1`,
		`captchafsm_breaker_open 0`,
		`captchafsm_transitions_total{event="solved",from="Polling",to="Done"} 1`,
		`captchafsm_solve_duration_seconds_count 1`,
	} {
		assert.Contains(t, string(body), want)
	}
	assert.NotContains(t, string(body), "go_goroutines", "the Metrics' registry holds the Metrics alone")
}

// TestBooksAgreeWithEngine runs a batch with the guide's error mix plus
// transport faults against the simulator and checks the metrics against
// the engine's own counters and the store.
func TestBooksAgreeWithEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "m.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		m := metrics.New(metrics.Options{Store: st})
		sim := providersim.New(providersim.Config{Seed: 3, Faults: providersim.Faults{
			Submit: providersim.FaultRates{HTTP500: 0.05, Drop: 0.02},
			Poll:   providersim.FaultRates{HTML502: 0.03},
		}})
		client, err := provider.New(provider.Config{BaseURL: "http://sim.invalid", Key: "0123456789abcdef0123456789abcdef",
			HTTPClient: sim.Client()})
		require.NoError(t, err)
		eng, err := engine.Open(context.Background(), engine.Config{Store: st, API: m.InstrumentAPI(client),
			OnTransition: m.Observe})
		require.NoError(t, err)
		defer eng.Close()
		m.SetBreaker(eng.BreakerOpen)

		reqs := make([]engine.Request, 200)
		for i := range reqs {
			reqs[i] = engine.Request{Method: "userrecaptcha", Params: map[string]string{
				"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/" + strconv.Itoa(i)}}
		}
		_, _, err = eng.SubmitMany(context.Background(), reqs)
		require.NoError(t, err)
		require.NoError(t, eng.Drain(context.Background()))

		stats := eng.Stats()
		// Created records are committed by Store.Create, outside the hook:
		// the engine's hook reports every other transition.
		assert.InDelta(t, float64(stats.Transitions), value(t, m, "captchafsm_transitions_total", nil), 0)
		assert.Positive(t, value(t, m, "captchafsm_transitions_total", map[string]string{"event": "solved"}))
		assert.InDelta(t, float64(stats.SubmitRequests), value(t, m, "captchafsm_requests_total", map[string]string{"endpoint": "in.php"}), 0)
		assert.InDelta(t, float64(stats.PollRequests), value(t, m, "captchafsm_requests_total", map[string]string{"endpoint": "res.php"}), 0)
		charged := value(t, m, "captchafsm_possibly_charged_total", nil)
		assert.InDelta(t, float64(stats.PossiblyCharged), charged, 0)
		assert.Positive(t, charged, "dropped submits must show as possibly charged")
		assert.Positive(t, value(t, m, "captchafsm_requests_total", map[string]string{"outcome": "transport_error"}), 0)

		counts, err := st.Count(context.Background())
		require.NoError(t, err)
		assert.InDelta(t, 200, value(t, m, "captchafsm_tasks", nil), 0)
		for _, s := range states.All() {
			assert.InDelta(t, float64(counts[s]), value(t, m, "captchafsm_tasks", map[string]string{"state": string(s)}), 0, s)
		}
		assert.Positive(t, counts[states.Done])
		assert.InDelta(t, float64(counts[states.Done]), value(t, m, "captchafsm_solve_duration_seconds", nil), 0,
			"one latency sample per solve")
		breaker := 0.0
		if eng.BreakerOpen() {
			breaker = 1
		}
		assert.InDelta(t, breaker, value(t, m, "captchafsm_breaker_open", nil), 0)
	})
}

// value returns the gathered value of the series of the family name whose
// labels include labels (a counter's or gauge's value, a histogram's
// count), summed over the matching series. It fails when none matches.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	sum, found := 0.0, false
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			found = true
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
		}
	}
	require.True(t, found, "no series %s%v", name, labels)
	return sum
}
