package metrics_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Example registers the collector in a bot's own registry, wires it to an
// engine that solves one captcha against the simulator, and prints a few
// of the gathered series.
func Example() {
	dir, _ := os.MkdirTemp("", "captchafsm-metrics-example")
	defer os.RemoveAll(dir)
	store, err := boltstore.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	// The bot's registry: the collector goes there, not into the global one.
	reg := prometheus.NewRegistry()
	m := metrics.New(metrics.Options{Store: store})
	reg.MustRegister(m)

	sim := providersim.New(providersim.Config{Seed: 1, Mix: providersim.NoErrors(), Speed: 1000})
	client, err := provider.New(provider.Config{
		BaseURL: "http://simulator.invalid", Key: "0123456789abcdef0123456789abcdef", HTTPClient: sim.Client(),
	})
	if err != nil {
		panic(err)
	}
	eng, err := engine.Open(context.Background(), engine.Config{
		Store:        store,
		API:          m.InstrumentAPI(client), // requests, answers, bans
		OnTransition: m.Observe,               // transitions, latency, charges
		Policy: engine.Policy{FirstPollDelay: 10 * time.Millisecond, FirstPollDelayToken: 10 * time.Millisecond,
			PollInterval: 5 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	m.SetBreaker(eng.BreakerOpen) // the engine exists only now

	if _, err := eng.Solve(context.Background(), engine.Request{Method: "userrecaptcha",
		Params: map[string]string{"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/"}}); err != nil {
		panic(err)
	}

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			switch f.GetName() {
			case "captchafsm_tasks":
				if s.GetGauge().GetValue() > 0 {
					fmt.Println(f.GetName(), strings.Join(labels, ","), s.GetGauge().GetValue())
				}
			case "captchafsm_breaker_open":
				fmt.Println(f.GetName(), s.GetGauge().GetValue())
			case "captchafsm_solve_duration_seconds":
				fmt.Println(f.GetName(), "count", s.GetHistogram().GetSampleCount())
			case "captchafsm_requests_total":
				if labels[0] == "endpoint=in.php" {
					fmt.Println(f.GetName(), strings.Join(labels, ","), s.GetCounter().GetValue())
				}
			}
		}
	}
	// Output:
	// captchafsm_breaker_open 0
	// captchafsm_requests_total endpoint=in.php,outcome=ok 1
	// captchafsm_solve_duration_seconds count 1
	// captchafsm_tasks state=Done 1
}
