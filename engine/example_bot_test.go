package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
)

// The README shows this example between the markers; TestReadmeExample
// keeps the two the same. It compiles but does not run: it would call the
// real provider.

// README:begin
func Example_bot() {
	ctx := context.Background()
	store, err := boltstore.Open("captchafsm.db", nil) // created 0600, locked
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	client, err := provider.New(provider.Config{
		BaseURL: "https://ocr.captchaai.com",
		Key:     os.Getenv("CAPTCHAFSM_API_KEY"), // checked here, never stored or logged
	})
	if err != nil {
		log.Fatal(err)
	}
	// Open resumes every unfinished task of the file where it was.
	eng, err := engine.Open(ctx, engine.Config{Store: store, API: client})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	res, err := eng.Solve(ctx, engine.Request{
		Method: "userrecaptcha",
		Params: map[string]string{
			"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
			"pageurl":   "https://example.com/login",
		},
		Ref: "login-42", // optional: your own name for the task
	})
	var te *engine.TaskError
	switch {
	case err == nil:
		fmt.Println("token:", res.Token)
	case errors.Is(err, engine.ErrNeedsAccountFix):
		fmt.Println("a person must fix the account, then call eng.AccountFixed:", err)
	case errors.As(err, &te):
		fmt.Printf("task %s ended %s with %s (%s)\n", te.ID, te.State, te.Code, te.Class)
	default:
		log.Fatal(err) // bad input: nothing was sent
	}
}

// README:end
