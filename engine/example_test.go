package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Example solves one image captcha against the built-in simulator, sped up
// a thousandfold, and prints the task's history.
func Example() {
	sim := providersim.New(providersim.Config{Seed: 1, Mix: providersim.NoErrors(), Speed: 1000})
	client, err := provider.New(provider.Config{
		BaseURL:    "http://simulator.invalid",
		Key:        "0123456789abcdef0123456789abcdef",
		HTTPClient: sim.Client(),
	})
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "captchafsm-example")
	defer os.RemoveAll(dir)
	store, err := boltstore.Open(filepath.Join(dir, "tasks.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	eng, err := engine.Open(context.Background(), engine.Config{
		Store: store,
		API:   client,
		// The simulator is 1000× fast; so is this policy.
		Policy: engine.Policy{FirstPollDelay: 10 * time.Millisecond, PollInterval: 5 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	res, err := eng.Solve(context.Background(), engine.Request{
		Method: "base64",
		Params: map[string]string{"body": pngBase64(200)},
		Ref:    "login-page-1",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.State, res.Submits, res.Token != "")
	hist, _ := eng.History(context.Background(), res.ID)
	for _, r := range hist {
		if r.Event != "not_ready" {
			fmt.Println(r.Seq > 0, r.From, "→", r.To, r.Event)
		}
	}
	// Output:
	// Done 1 true
	// true  → Submitting created
	// true Submitting → Submitting submit_sending
	// true Submitting → Polling submit_accepted
	// true Polling → Done solved
}
