package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/dashboard"
	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Example serves an engine's tasks behind a token, submits a task through
// the JSON API, waits for it, and reads the summary.
func Example() {
	dir, _ := os.MkdirTemp("", "captchafsm-dashboard-example")
	defer os.RemoveAll(dir)
	store, err := boltstore.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	sim := providersim.New(providersim.Config{Seed: 1, Mix: providersim.NoErrors(), Speed: 1000})
	client, err := provider.New(provider.Config{BaseURL: "http://simulator.invalid",
		Key: "0123456789abcdef0123456789abcdef", HTTPClient: sim.Client()})
	if err != nil {
		panic(err)
	}
	m := metrics.New(metrics.Options{Store: store})
	eng, err := engine.Open(context.Background(), engine.Config{Store: store, API: m.InstrumentAPI(client),
		OnTransition: m.Observe, Policy: engine.Policy{FirstPollDelay: 10 * time.Millisecond,
			FirstPollDelayToken: 10 * time.Millisecond, PollInterval: 5 * time.Millisecond}})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	m.SetBreaker(eng.BreakerOpen)

	srv := httptest.NewServer(dashboard.New(dashboard.Config{Engine: eng, Store: store, Metrics: m, Token: "let-me-in"}))
	defer srv.Close()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer let-me-in")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	submit := `{"method": "turnstile", "ref": "signup", "params": {"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/"}}`
	status, body := call("POST", "/api/tasks", submit)
	var created dashboard.SubmitResult
	_ = json.Unmarshal([]byte(body), &created)
	fmt.Println("submit:", status, created.Added)
	res, _ := eng.Wait(context.Background(), created.ID)
	fmt.Println("state:", res.State)
	status, _ = call("POST", "/api/tasks", submit)
	fmt.Println("same ref again:", status)
	_, body = call("GET", "/api/tasks/signup/history", "")
	var h dashboard.History
	_ = json.Unmarshal([]byte(body), &h)
	fmt.Println("last transition:", h.History[len(h.History)-1].Event)
	_, body = call("GET", "/api/summary", "")
	var sum dashboard.Summary
	_ = json.Unmarshal([]byte(body), &sum)
	fmt.Println("done:", sum.Counts["Done"], "breaker open:", *sum.BreakerOpen)

	resp, _ := http.Get(srv.URL + "/api/summary")
	fmt.Println("without the token:", resp.StatusCode)
	resp.Body.Close()
	// Output:
	// submit: 201 true
	// state: Done
	// same ref again: 200
	// last transition: solved
	// done: 1 breaker open: false
	// without the token: 401
}
