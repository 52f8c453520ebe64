package pgstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// BenchmarkApply measures durable transitions per second (one op = one
// Apply: a history record and the task's update, committed) by 1 and 64
// concurrent callers, on bbolt (fsync on) and on PostgreSQL (fsync and
// synchronous_commit as the server has them), in the same run. Each
// caller drives a task of its own through Polling → Polling (not ready).
func BenchmarkApply(b *testing.B) {
	for _, backend := range []string{"bbolt", "postgres"} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/callers=%d", backend, callers), func(b *testing.B) {
				s := benchStore(b, backend)
				ctx := context.Background()
				tasks := make([]*persist.Task, callers)
				for i := range tasks {
					tasks[i] = &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"i": strconv.Itoa(i)}}
				}
				require.NoError(b, s.Create(ctx, tasks...))
				for _, t := range tasks {
					require.NoError(b, step(s, t, transitions.SubmitAccepted, states.Polling))
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				errs := make([]error, callers)
				for c := range callers {
					n := b.N / callers
					if c < b.N%callers {
						n++
					}
					wg.Go(func() {
						t := tasks[c]
						for range n {
							t.Polls++
							if err := step(s, t, transitions.NotReady, states.Polling); err != nil {
								errs[c] = err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				for _, err := range errs {
					require.NoError(b, err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
			})
		}
	}
}

func benchStore(b *testing.B, backend string) persist.Store {
	if backend == "postgres" {
		return pgstoretest.Open(b, &pgstore.Options{MaxConns: 64})
	}
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkEngines measures transitions per second of 1, 2 and 4 engines
// sharing one PostgreSQL database the way engines do: each engine (its own
// pool of 16 connections) claims tasks in batches of 64 with a lease and
// drives each through a solve's four steps (submit intent, accepted, not
// ready, solved) with 16 workers. One op = one transition.
func BenchmarkEngines(b *testing.B) {
	for _, engines := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("engines=%d", engines), func(b *testing.B) {
			ctx := context.Background()
			schema := pgstoretest.Schema(b)
			stores := make([]*pgstore.Store, engines)
			for i := range stores {
				stores[i] = pgstoretest.Open(b, &pgstore.Options{Schema: schema, MaxConns: 16})
			}
			const steps = 4
			n := max(b.N/steps, 1)
			for lo := 0; lo < n; lo += 5000 {
				batch := make([]*persist.Task, min(5000, n-lo))
				for i := range batch {
					batch[i] = &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"k": "v"}}
				}
				require.NoError(b, stores[0].Create(ctx, batch...))
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make([]error, engines)
			for e := range engines {
				wg.Go(func() { errs[e] = benchEngine(ctx, stores[e], "engine-"+strconv.Itoa(e)) })
			}
			wg.Wait()
			b.StopTimer()
			for _, err := range errs {
				require.NoError(b, err)
			}
			counts, err := stores[0].Count(ctx)
			require.NoError(b, err)
			require.Equal(b, map[states.State]int{states.Done: n}, counts)
			b.ReportMetric(float64(n*steps)/b.Elapsed().Seconds(), "transitions/s")
		})
	}
}

// benchEngine claims and drives tasks until none is left to claim.
func benchEngine(ctx context.Context, s *pgstore.Store, owner string) error {
	const workers = 16
	work := make(chan *persist.Task, 64)
	errs := make(chan error, workers+1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range work {
				for _, st := range []struct {
					ev transitions.Event
					to states.State
				}{
					{transitions.SubmitSending, states.Submitting},
					{transitions.SubmitAccepted, states.Polling},
					{transitions.NotReady, states.Polling},
					{transitions.Solved, states.Done},
				} {
					if err := step(s, t, st.ev, st.to); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for {
		got, err := s.Claim(ctx, owner, 64, time.Minute)
		if err != nil {
			errs <- err
			break
		}
		if len(got) == 0 {
			break
		}
		for _, t := range got {
			work <- t
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}
