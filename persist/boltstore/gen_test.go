package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestGenerateDB writes a large database for the scale measurements of
// docs/performance.md, through the store's own API (Create and Apply):
//
//	CAPTCHAFSM_GEN_DB=/tmp/1m.db CAPTCHAFSM_GEN_N=1000000 go test -run '^TestGenerateDB$' -timeout 1h ./persist/boltstore/
//
// Seven tasks in ten are Done with a solve's five records (created,
// submit_sending, submit_accepted, not_ready, solved); one in ten each is
// Polling (four records), Backoff (three), both due over the next hour, or
// Submitting with a submit in flight (two). Commits skip fsync.
func TestGenerateDB(t *testing.T) {
	path := os.Getenv("CAPTCHAFSM_GEN_DB")
	if path == "" {
		t.Skip("set CAPTCHAFSM_GEN_DB=PATH (and CAPTCHAFSM_GEN_N, default 100000) to write a large database")
	}
	n := 100_000
	if v := os.Getenv("CAPTCHAFSM_GEN_N"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	generate(t, s, n, time.Now())
}

// generate adds n tasks to s as TestGenerateDB describes, now being the
// time the in-flight ones are scheduled from.
func generate(t testing.TB, s persist.Store, n int, now time.Time) {
	ctx := context.Background()
	const chunk = 2000
	start := now.Add(-time.Duration(n) * time.Millisecond)
	for lo := 0; lo < n; lo += chunk {
		tasks := make([]*persist.Task, min(chunk, n-lo))
		for i := range tasks {
			at := start.Add(time.Duration(lo+i) * time.Millisecond)
			tasks[i] = &persist.Task{ID: persist.NewID(), Ref: "gen-" + strconv.Itoa(lo+i), Method: "turnstile",
				Params:  map[string]string{"sitekey": "0x4AAAAAAAB", "pageurl": "https://shop.example/checkout"},
				Created: at, Updated: at, NextAt: at}
		}
		require.NoError(t, s.Create(ctx, tasks...))
		var wg sync.WaitGroup
		errs := make([]error, len(tasks))
		work := make(chan int)
		for range 250 {
			wg.Go(func() {
				for i := range work {
					errs[i] = genSteps(ctx, s, tasks[i], lo+i, now)
				}
			})
		}
		for i := range tasks {
			work <- i
		}
		close(work)
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	}
}

// genSteps moves the i-th generated task to where TestGenerateDB wants it.
func genSteps(ctx context.Context, s persist.Store, t *persist.Task, i int, now time.Time) error {
	step := func(ev transitions.Event, to states.State, change func(*persist.Task), rec persist.Record) error {
		rec.From, rec.Event, rec.To = t.State, ev, to
		rec.At = t.Updated.Add(time.Second)
		t.State, t.Updated = to, rec.At
		if change != nil {
			change(t)
		}
		return s.Apply(ctx, t, &rec)
	}
	pid := strconv.Itoa(700000000 + i)
	if err := step(transitions.SubmitSending, states.Submitting, func(t *persist.Task) { t.Submits++ }, persist.Record{}); err != nil {
		return err
	}
	switch i % 10 {
	case 7: // a submit in flight
		return nil
	case 8:
		return step(transitions.TransientError, states.Backoff, func(t *persist.Task) {
			t.Retries++
			t.Code, t.NextAt = "ERROR_NO_SLOT_AVAILABLE", now.Add(time.Duration(i%3600)*time.Second)
		}, persist.Record{Code: "ERROR_NO_SLOT_AVAILABLE"})
	}
	if err := step(transitions.SubmitAccepted, states.Polling, func(t *persist.Task) {
		t.ProviderID, t.PollSince, t.NextAt = pid, t.Updated, t.Updated.Add(20*time.Second)
	}, persist.Record{ProviderID: pid}); err != nil {
		return err
	}
	if err := step(transitions.NotReady, states.Polling, func(t *persist.Task) {
		t.Polls++
		t.Code, t.NextAt = "CAPCHA_NOT_READY", now.Add(time.Duration(i%3600)*time.Second)
	}, persist.Record{Code: "CAPCHA_NOT_READY", ProviderID: pid}); err != nil {
		return err
	}
	if i%10 == 9 {
		return nil
	}
	return step(transitions.Solved, states.Done, func(t *persist.Task) {
		t.Polls++
		t.Code, t.Token, t.Cost, t.NextAt = "", fmt.Sprintf("0.token-%d-%s", i, pid), "0.00299", time.Time{}
	}, persist.Record{ProviderID: pid})
}
