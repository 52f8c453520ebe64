package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// resumeN is the size of the database the resume benchmarks open:
// CAPTCHAFSM_RESUME_N, default 100,000.
func resumeN(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("CAPTCHAFSM_RESUME_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("CAPTCHAFSM_RESUME_N: %v", err)
		}
	}
	return n
}

// resumeDB writes a database of n tasks waiting to submit, as a process
// that recorded a large batch and died would leave it, and returns its
// path.
func resumeDB(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "resume.db")
	st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	r := recaptcha("")
	for lo := 0; lo < n; lo += 2000 {
		tasks := make([]*persist.Task, min(2000, n-lo))
		for i := range tasks {
			tasks[i] = &persist.Task{ID: persist.NewID(), Method: r.Method, Params: r.Params, State: transitions.Initial,
				Created: now, Updated: now, NextAt: now}
		}
		if err := st.Create(context.Background(), tasks...); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

// stallAPI never answers: the engine's first request is the moment it
// reports, and none completes.
type stallAPI struct{ first chan struct{} }

func (a *stallAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	select {
	case a.first <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return "", ctx.Err()
}

func (a *stallAPI) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// BenchmarkResume opens an engine on a database of CAPTCHAFSM_RESUME_N
// waiting tasks (default 100,000) until its first in.php request leaves,
// beside the way it resumed before paging (every active task read, and
// the history of each one waiting to submit). Target: open in ≤ 0.5 s at
// 100k, first request within 1 s at 1M.
func BenchmarkResume(b *testing.B) {
	n := resumeN(b)
	orig := resumeDB(b, n)
	data, err := os.ReadFile(orig)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "copy.db")
	// Each run starts from the database as written: a run's own submit
	// would hold the next run's first one for the provider's window.
	open := func(b *testing.B) *boltstore.Store {
		b.StopTimer()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := boltstore.Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	b.Run("engine/open", func(b *testing.B) {
		var first time.Duration
		for b.Loop() {
			st := open(b)
			api := &stallAPI{first: make(chan struct{}, 1)}
			start := time.Now()
			eng, err := engine.Open(context.Background(), engine.Config{Store: st, API: api})
			if err != nil {
				b.Fatal(err)
			}
			<-api.first
			first += time.Since(start)
			b.StopTimer()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = eng.Shutdown(ctx)
			cancel()
			st.Close()
			b.StartTimer()
		}
		b.ReportMetric(first.Seconds()/float64(b.N), "s_to_first_request")
	})
	b.Run("baseline/read_all", func(b *testing.B) {
		for b.Loop() {
			st := open(b)
			ctx := context.Background()
			list, err := st.List(ctx, persist.ListOptions{States: states.ActiveStates()})
			if err != nil {
				b.Fatal(err)
			}
			for _, t := range list {
				if t.State == states.Submitting {
					if _, err := st.History(ctx, t.ID); err != nil {
						b.Fatal(err)
					}
				}
			}
			st.Close()
		}
	})
}
