package dashboard_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/dashboard"
	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/transitions"
)

const simKey = "0123456789abcdef0123456789abcdef"

// fastPolicy suits the simulator at Speed 1000.
var fastPolicy = engine.Policy{
	FirstPollDelay: 20 * time.Millisecond, FirstPollDelayToken: 20 * time.Millisecond,
	PollInterval: 10 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	RetryDelays: map[string]time.Duration{"ERROR_NO_SLOT_AVAILABLE": 20 * time.Millisecond},
}

// fixture is an engine on a bbolt store against the in-process simulator,
// with the dashboard in front. Its hook can change the simulator's mix at a
// given event, so that a story (a retry, a resubmit) happens to exactly one
// task.
type fixture struct {
	t       *testing.T
	sim     *providersim.Sim
	store   persist.Store
	eng     *engine.Engine
	metrics *metrics.Metrics
	handler http.Handler

	mu      sync.Mutex
	onEvent map[transitions.Event]func()
}

type fixtureOpts struct {
	token string
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{t: t, onEvent: map[transitions.Event]func(){}}
	f.sim = providersim.New(providersim.Config{Seed: 11, Mix: providersim.NoErrors(), Speed: 1000, Key: simKey})
	client, err := provider.New(provider.Config{BaseURL: "http://sim.invalid", Key: simKey, HTTPClient: f.sim.Client()})
	require.NoError(t, err)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "dash.db"), &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	f.store = st
	f.metrics = metrics.New(metrics.Options{Store: st})
	f.eng, err = engine.Open(context.Background(), engine.Config{
		Store: st, API: f.metrics.InstrumentAPI(client), Policy: fastPolicy,
		OnTransition: func(tr engine.Transition) {
			f.metrics.Observe(tr)
			f.mu.Lock()
			do := f.onEvent[tr.Record.Event]
			delete(f.onEvent, tr.Record.Event)
			f.mu.Unlock()
			if do != nil {
				do()
			}
		},
	})
	require.NoError(t, err)
	f.metrics.SetBreaker(f.eng.BreakerOpen)
	t.Cleanup(func() {
		_ = f.eng.Close()
		_ = st.Close()
	})
	f.handler = dashboard.New(dashboard.Config{Engine: f.eng, Store: st, Metrics: f.metrics, Token: o.token})
	return f
}

// once runs do the first time event is committed.
func (f *fixture) once(event transitions.Event, do func()) {
	f.mu.Lock()
	f.onEvent[event] = do
	f.mu.Unlock()
}

func (f *fixture) setMix(m providersim.Mix) {
	require.NoError(f.t, f.sim.SetMix(m))
}

// solve submits req and waits until the engine is done with it.
func (f *fixture) solve(req engine.Request) string {
	f.t.Helper()
	id, err := f.eng.Submit(context.Background(), req)
	require.NoError(f.t, err)
	_, _ = f.eng.Wait(context.Background(), id) // Failed and parked tasks are fine
	return id
}

func pngBody() string {
	b := make([]byte, 300)
	copy(b, "\x89PNG\r\n\x1a\n")
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func recaptcha(ref string) engine.Request {
	return engine.Request{Method: "userrecaptcha", Ref: ref, Params: map[string]string{
		"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://shop.example.com/login/" + ref}}
}

// stories holds the ids of the populated fixture's notable tasks.
type stories struct {
	done      []string
	retried   string // NO_SLOT once, then solved
	resubmit  string // UNSOLVABLE once, then solved on a new provider task
	failed    string // a permanent code
	parked    string // ZERO_BALANCE: NeedsAccountFix, breaker open
	parkedToo string // submitted while the breaker was open
}

// populate gives the fixture one task per story, each run to its end
// before the next starts, so that every story is deterministic.
func (f *fixture) populate() stories {
	f.t.Helper()
	var s stories
	ctx := context.Background()
	reqs := []engine.Request{
		{Method: "base64", Ref: "captcha-home", Params: map[string]string{"body": pngBody()}},
		{Method: "turnstile", Ref: "signup-form", Params: map[string]string{
			"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://shop.example.com/signup"}},
		{Method: "hcaptcha", Ref: "checkout", Params: map[string]string{
			"sitekey": "10000000-ffff-ffff-ffff-000000000001", "pageurl": "https://shop.example.com/checkout",
			"proxy": "scraper:s3cret-pass@203.0.113.7:3128", "proxytype": "HTTP"}},
		recaptcha("login-1"),
		recaptcha("login-2"),
	}
	ids, _, err := f.eng.SubmitMany(ctx, reqs)
	require.NoError(f.t, err)
	require.NoError(f.t, f.eng.Drain(ctx))
	s.done = ids

	f.setMix(providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 1}, Poll: map[string]float64{}})
	f.once(transitions.TransientError, func() { f.setMix(providersim.NoErrors()) })
	s.retried = f.solve(recaptcha("login-busy"))

	f.setMix(providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 1}})
	f.once(transitions.ResubmitNeeded, func() { f.setMix(providersim.NoErrors()) })
	s.resubmit = f.solve(recaptcha("login-unsolvable"))

	f.setMix(providersim.Mix{Submit: map[string]float64{"ERROR_BAD_PARAMETERS": 1}, Poll: map[string]float64{}})
	s.failed = f.solve(recaptcha("login-bad"))
	f.setMix(providersim.NoErrors())

	f.sim.SetBalance(0)
	s.parked = f.solve(recaptcha("login-broke"))
	s.parkedToo = f.solve(recaptcha("login-broke-2"))
	return s
}

// do runs one request through the handler.
func do(t *testing.T, h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.Host = "127.0.0.1:8080"
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// persistAll lists every task.
var persistAll = persist.ListOptions{}
