package persist_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The engine sees a persist.Store; cmd wires in the bbolt one.
func Example() {
	dir, _ := os.MkdirTemp("", "persist-example")
	defer os.RemoveAll(dir)
	var store persist.Store
	store, err := boltstore.Open(filepath.Join(dir, "captchafsm.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	ctx := context.Background()
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	task := &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"phrase": "1"}, Created: at}
	_ = store.Create(ctx, task)

	moves := []struct {
		event transitions.Event
		to    states.State
	}{
		{transitions.SubmitSending, states.Submitting},
		{transitions.SubmitAccepted, states.Polling},
		{transitions.Solved, states.Done},
	}
	for i, m := range moves {
		rec := &persist.Record{At: at.Add(time.Duration(i+1) * time.Second), From: task.State, Event: m.event, To: m.to}
		task.State = m.to
		if err := store.Apply(ctx, task, rec); err != nil {
			fmt.Println(err)
			return
		}
	}
	hist, _ := store.History(ctx, task.ID)
	for _, r := range hist {
		fmt.Printf("%d %s %-10s %s -> %s\n", r.Seq, r.At.Format(time.TimeOnly), r.From, r.Event, r.To)
	}
	n, _ := store.Count(ctx)
	fmt.Println(n)
	// Output:
	// 1 12:00:00            created -> Submitting
	// 2 12:00:01 Submitting submit_sending -> Submitting
	// 3 12:00:02 Submitting submit_accepted -> Polling
	// 4 12:00:03 Polling    solved -> Done
	// map[Done:1]
}
