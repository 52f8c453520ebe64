package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "boltstore-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "captchafsm.db")

	s, err := boltstore.Open(path, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	task := &persist.Task{ID: persist.NewID(), Ref: "order-1", Method: "post", Created: at}
	_ = s.Create(ctx, task)

	// One transition: the record and the task's new state, in one commit.
	task.State, task.ProviderID = states.Polling, "7234"
	task.NextAt = at.Add(5 * time.Second)
	err = s.Apply(ctx, task, &persist.Record{At: at.Add(time.Second), From: states.Submitting,
		Event: transitions.SubmitAccepted, To: states.Polling, ProviderID: "7234"})
	fmt.Println("apply:", err, "seq", task.Seq)

	// A transition computed from a stale copy is refused.
	stale := task.Clone()
	stale.Seq = 1
	err = s.Apply(ctx, stale, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling})
	fmt.Println("stale:", errors.Is(err, persist.ErrConflict))

	// A second opener of the same file is refused.
	_, err = boltstore.Open(path, &boltstore.Options{LockTimeout: 100 * time.Millisecond})
	fmt.Println("second open:", errors.Is(err, persist.ErrLocked))

	_ = s.Close()
	s, _ = boltstore.Open(path, nil)
	defer s.Close()
	got, _ := s.GetByRef(ctx, "order-1")
	fmt.Println(got.State, got.ProviderID, got.NextAt.Format(time.TimeOnly))
	// Output:
	// apply: <nil> seq 2
	// stale: true
	// second open: true
	// Polling 7234 12:00:05
}
