package crashtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/crashtest"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Check holds a store against the machine and the provider's ledger after
// a batch: here a clean one, solved by an engine against a fast simulator.
func ExampleCheck() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "crashtest-example-")
	defer os.RemoveAll(dir)
	sim := providersim.New(providersim.Config{Seed: 1, Mix: providersim.NoErrors(), Speed: 1000})
	client, _ := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: testKey, HTTPClient: sim.Client()})
	st, _ := boltstore.Open(filepath.Join(dir, "example.db"), &boltstore.Options{NoSync: true})
	defer st.Close()
	eng, _ := engine.Open(ctx, engine.Config{Store: st, API: client, Policy: engine.Policy{
		FirstPollDelay: 10 * time.Millisecond, FirstPollDelayToken: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond}})
	var reqs []engine.Request
	for i := range 5 {
		reqs = append(reqs, engine.Request{Method: "turnstile", Ref: fmt.Sprint("job-", i),
			Params: map[string]string{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": fmt.Sprint("https://example.com/", i)}})
	}
	_, _, _ = eng.SubmitMany(ctx, reqs)
	_ = eng.Drain(ctx)
	_ = eng.Close()

	rep, err := crashtest.Check(ctx, st, sim.Ledger(), crashtest.Options{Refs: []string{"job-0", "job-1", "job-2", "job-3", "job-4"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("tasks:", rep.Tasks, "done:", rep.States["Done"])
	fmt.Println("charged:", rep.Charged, "orphaned:", rep.Orphaned)
	fmt.Println("in.php requests:", rep.SubmitRequests, "recorded:", rep.RecordedSubmits)
	fmt.Println("ok:", rep.OK())
	// Output:
	// tasks: 5 done: 5
	// charged: 5 orphaned: 0
	// in.php requests: 5 recorded: 5
	// ok: true
}
