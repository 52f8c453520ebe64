package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// exampleEngine opens an engine on a fresh file and the simulator, sped
// up a thousandfold (and the policy with it), and returns it with a
// function that closes both.
func exampleEngine(sim *providersim.Sim, path string) (*engine.Engine, func()) {
	client, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL,
		Key: "0123456789abcdef0123456789abcdef", HTTPClient: sim.Client()})
	if err != nil {
		log.Fatal(err)
	}
	store, err := boltstore.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	eng, err := engine.Open(context.Background(), engine.Config{Store: store, API: client,
		Policy: engine.Policy{}.Faster(1000)})
	if err != nil {
		log.Fatal(err)
	}
	return eng, func() { eng.Close(); store.Close() }
}

func exampleDir() (string, func()) {
	dir, err := os.MkdirTemp("", "captchafsm-example")
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

func turnstile(ref string) engine.Request {
	return engine.Request{Method: "turnstile", Ref: ref,
		Params: map[string]string{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/login"}}
}

// ExampleEngine_Enqueue submits a request twice under one ref: the second
// attaches to the first's task. With RefUnique the ref must be new.
func ExampleEngine_Enqueue() {
	dir, cleanup := exampleDir()
	defer cleanup()
	sim := providersim.New(providersim.Config{Speed: 1000, Mix: providersim.NoErrors()})
	eng, closeAll := exampleEngine(sim, filepath.Join(dir, "bot.db"))
	defer closeAll()
	ctx := context.Background()

	first, err := eng.Enqueue(ctx, turnstile("order-7"))
	if err != nil {
		log.Fatal(err)
	}
	again, err := eng.Enqueue(ctx, turnstile("order-7"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.Attached, again.Attached, again.ID == first.ID)

	unique := turnstile("order-7")
	unique.IfRefExists = engine.RefUnique
	_, err = eng.Enqueue(ctx, unique)
	fmt.Println(errors.Is(err, engine.ErrRefExists))
	// Output:
	// false true true
	// true
}

// ExampleEngine_Wait collects, by its ref, a task a previous engine
// submitted: what a bot does after a restart.
func ExampleEngine_Wait() {
	dir, cleanup := exampleDir()
	defer cleanup()
	sim := providersim.New(providersim.Config{Speed: 1000, Mix: providersim.NoErrors()})
	path := filepath.Join(dir, "bot.db")
	ctx := context.Background()

	eng, closeAll := exampleEngine(sim, path)
	if _, err := eng.Submit(ctx, turnstile("signup-3")); err != nil {
		log.Fatal(err)
	}
	closeAll() // the task goes on in the file (and at the provider)

	eng, closeAll = exampleEngine(sim, path)
	defer closeAll()
	res, err := eng.Wait(ctx, "signup-3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Ref, res.State, res.Token != "")
	// Output:
	// signup-3 Done true
}

// ExampleRequest gives a task a deadline of its own: with no answer by
// then it ends Failed with DEADLINE_EXCEEDED, and nothing more is sent
// for it. Priority and the task's own retry limits are set the same way.
func ExampleRequest() {
	dir, cleanup := exampleDir()
	defer cleanup()
	// A provider that takes 1–2 minutes (1–2 ms here) to answer.
	sim := providersim.New(providersim.Config{Speed: 1000, Mix: providersim.NoErrors(),
		SolveTime: map[string]providersim.Dist{"turnstile": {Min: time.Minute, Max: 2 * time.Minute}}})
	eng, closeAll := exampleEngine(sim, filepath.Join(dir, "bot.db"))
	defer closeAll()

	req := turnstile("login-9")
	req.Deadline = time.Now().Add(30 * time.Millisecond) // 30 s of the provider's time
	req.Priority = 10                                    // submitted before the tasks due with less
	req.MaxRetries = 1                                   // this task's own max_retries
	res, err := eng.Solve(context.Background(), req)
	fmt.Println(errors.Is(err, engine.ErrFailed), res.State, res.Code)
	// Output:
	// true Failed DEADLINE_EXCEEDED
}
