package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Two engines share one database: each claims the tasks it drives, and a
// step computed by an engine that lost its lease is refused. (Not run by
// go test: it needs a server; TestExampleFleet runs it when
// CAPTCHAFSM_TEST_PG is set.)
func ExampleOpen() {
	ctx := context.Background()
	url := os.Getenv("CAPTCHAFSM_TEST_PG") // postgres://user@host:5432/db
	a, err := pgstore.Open(ctx, url, &pgstore.Options{Schema: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pgstore.DropSchema(ctx, url, "example")
	defer a.Close()
	b, _ := pgstore.Open(ctx, url, &pgstore.Options{Schema: "example"})
	defer b.Close()

	task := &persist.Task{ID: persist.NewID(), Ref: "order-1", Method: "post"}
	_ = a.Create(ctx, task)
	mine, _ := a.Claim(ctx, "engine-a", 10, time.Microsecond) // a lease that ends at once
	theirs, _ := b.Claim(ctx, "engine-b", 10, 30*time.Second) // so b takes it over
	fmt.Println("a claimed", len(mine), "b claimed", len(theirs))

	lost, _ := a.Renew(ctx, "engine-a", []string{task.ID}, 30*time.Second)
	fmt.Println("a lost", len(lost))

	step := mine[0]
	step.State = states.Polling
	err = a.Apply(ctx, step, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling})
	fmt.Println("a's step refused:", errors.Is(err, persist.ErrConflict))

	_ = b.SetBreaker(ctx, true, "ERROR_ZERO_BALANCE")
	c, _ := a.Conditions(ctx)
	fmt.Println("a sees b's breaker:", c.BreakerOpen, c.BreakerCode)
	// Output with a server:
	// a claimed 1 b claimed 1
	// a lost 1
	// a's step refused: true
	// a sees b's breaker: true ERROR_ZERO_BALANCE
}

// Options are checked before anything is sent.
func ExampleOptions() {
	_, err := pgstore.Open(context.Background(), "postgres://bots@db.internal/captchafsm",
		&pgstore.Options{Schema: "fleet", MaxConns: -1})
	fmt.Println(err)
	// Output: pgstore: Options.MaxConns -1 is negative
}
