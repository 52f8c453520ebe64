package engine_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// leasingStore shares one bbolt store among engines of one process, with
// leases and fleet conditions kept in memory: enough to test the engine's
// fleet mode without a database server (persist/pgstore's own tests run it
// on PostgreSQL).
type leasingStore struct {
	persist.Store
	mu     sync.Mutex
	leases map[string]lease
	cond   persist.Conditions
	slot   time.Time
}

type lease struct {
	owner string
	until time.Time
}

func newLeasingStore(st persist.Store) *leasingStore {
	return &leasingStore{Store: st, leases: map[string]lease{}}
}

var (
	_ persist.Leaser = (*leasingStore)(nil)
	_ persist.Fleet  = (*leasingStore)(nil)
)

func (s *leasingStore) Create(ctx context.Context, tasks ...*persist.Task) error {
	if err := s.Store.Create(ctx, tasks...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		if t.Owner != "" {
			s.leases[t.ID] = lease{t.Owner, t.LeaseUntil}
		}
	}
	return nil
}

func (s *leasingStore) Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]*persist.Task, error) {
	list, err := s.Store.List(ctx, persist.ListOptions{States: []states.State{
		states.Submitting, states.Backoff, states.Polling, states.Resubmitting}}) // states.ActiveStates(), spelt out
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].NextAt.Before(list[j].NextAt) })
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []*persist.Task
	for _, t := range list {
		if len(out) == limit {
			break
		}
		if l, ok := s.leases[t.ID]; ok && now.Before(l.until) {
			continue
		}
		s.leases[t.ID] = lease{owner, now.Add(ttl)}
		out = append(out, t)
	}
	return out, nil
}

func (s *leasingStore) Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lost []string
	for _, id := range ids {
		if l, ok := s.leases[id]; ok && l.owner != owner {
			lost = append(lost, id)
			continue
		}
		s.leases[id] = lease{owner, time.Now().Add(ttl)}
	}
	return lost, nil
}

func (s *leasingStore) Release(ctx context.Context, owner string, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.leases[id].owner == owner {
			delete(s.leases, id)
		}
	}
	return nil
}

func (s *leasingStore) SetBreaker(ctx context.Context, open bool, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cond.BreakerOpen, s.cond.BreakerCode = open, code
	return nil
}

func (s *leasingStore) Pause(ctx context.Context, submits, polls bool, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if submits && until.After(s.cond.SubmitUntil) {
		s.cond.SubmitUntil = until
	}
	if polls && until.After(s.cond.PollUntil) {
		s.cond.PollUntil = until
	}
	return nil
}

func (s *leasingStore) Conditions(ctx context.Context) (persist.Conditions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cond, nil
}

func (s *leasingStore) ReserveSubmit(ctx context.Context, rate float64) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Now()
	if s.slot.After(at) {
		at = s.slot
	}
	s.slot = at.Add(time.Duration(float64(time.Second) / rate))
	return at, nil
}

// fleetEngines opens n engines on one leasing store and one simulator.
func fleetEngines(t *testing.T, n int, sim *providersim.Sim, hook func(owner string, tr engine.Transition)) (*leasingStore, []*engine.Engine) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "fleet.db"), &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	ls := newLeasingStore(st)
	var engs []*engine.Engine
	for i := range n {
		client, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: simKey, HTTPClient: sim.Client()})
		require.NoError(t, err)
		owner := string(rune('A' + i))
		eng, err := engine.Open(context.Background(), engine.Config{Store: ls, API: client, Fleet: true, Owner: owner,
			LeaseTTL: 10 * time.Second,
			OnTransition: func(tr engine.Transition) {
				if hook != nil {
					hook(owner, tr)
				}
			}})
		require.NoError(t, err)
		engs = append(engs, eng)
	}
	t.Cleanup(func() {
		for _, e := range engs {
			_ = e.Close()
		}
		_ = st.Close()
	})
	return ls, engs
}

func TestFleetSharesWorkWithoutOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Seed: 5, Mix: providersim.NoErrors()})
		var mu sync.Mutex
		driver := map[string]map[string]bool{} // task → owners that moved it
		ls, engs := fleetEngines(t, 2, sim, func(owner string, tr engine.Transition) {
			mu.Lock()
			defer mu.Unlock()
			if driver[tr.Task.ID] == nil {
				driver[tr.Task.ID] = map[string]bool{}
			}
			driver[tr.Task.ID][owner] = true
		})
		ctx := context.Background()
		reqs := mixed(200)
		_, _, err := engs[0].SubmitMany(ctx, reqs[:100])
		require.NoError(t, err)
		_, _, err = engs[1].SubmitMany(ctx, reqs[100:])
		require.NoError(t, err)
		for _, e := range engs {
			require.NoError(t, e.Drain(ctx))
		}
		counts, err := ls.Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 200, counts[states.Done])
		mu.Lock()
		defer mu.Unlock()
		for id, owners := range driver {
			assert.Len(t, owners, 1, "task %s driven by %v", id, owners)
		}
		led := sim.Ledger()
		assert.Equal(t, 200, led.Charged())
		assert.Empty(t, led.Bans)
	})
}

func TestFleetTakesOverExpiredLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Seed: 6, Mix: providersim.NoErrors()})
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "ghost.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		// A dead engine "ghost" left a task whose submit may have been sent.
		ctx := context.Background()
		now := time.Now()
		tk := &persist.Task{ID: persist.NewID(), Method: "turnstile", State: states.Submitting,
			Params:  map[string]string{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/"},
			Created: now, Updated: now, NextAt: now, Owner: "ghost", LeaseUntil: now.Add(20 * time.Second)}
		ls := newLeasingStore(st)
		require.NoError(t, ls.Create(ctx, tk))
		next := tk.Clone()
		next.Submits = 1
		require.NoError(t, ls.Apply(ctx, next, &persist.Record{At: now, From: states.Submitting,
			Event: transitions.SubmitSending, To: states.Submitting}))

		client, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: simKey, HTTPClient: sim.Client()})
		require.NoError(t, err)
		eng, err := engine.Open(ctx, engine.Config{Store: ls, API: client, Fleet: true, Owner: "heir", LeaseTTL: 10 * time.Second})
		require.NoError(t, err)
		defer eng.Close()
		require.NoError(t, eng.Drain(ctx))
		got, err := ls.Get(ctx, tk.ID)
		require.NoError(t, err)
		assert.Equal(t, states.Done, got.State)
		h, err := ls.History(ctx, tk.ID)
		require.NoError(t, err)
		ev := events(h)
		assert.Contains(t, ev, transitions.PossiblyCharged)
		first := at(t, h, transitions.PossiblyCharged, 0)
		assert.False(t, first.Before(now.Add(20*time.Second)), "not taken before the ghost's lease expired")
	})
}

func TestFleetBreakerTripsEveryEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Seed: 8, Mix: providersim.NoErrors()})
		sim.SetBalance(0)
		ls, engs := fleetEngines(t, 2, sim, nil)
		ctx := context.Background()
		// Engine A meets ZERO_BALANCE first.
		_, _, err := engs[0].SubmitMany(ctx, mixed(1))
		require.NoError(t, err)
		require.NoError(t, engs[0].Drain(ctx))
		<-time.After(2 * time.Second) // B learns the fleet's conditions
		assert.True(t, engs[1].BreakerOpen(), "the breaker is fleet-wide")
		before := sim.Ledger().Requests[providersim.KindSubmit]
		_, _, err = engs[1].SubmitMany(ctx, mixed(51)[1:])
		require.NoError(t, err)
		require.NoError(t, engs[1].Drain(ctx))
		assert.Equal(t, before, sim.Ledger().Requests[providersim.KindSubmit], "B sent nothing")
		counts, err := ls.Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 51, counts[states.NeedsAccountFix])
		sim.SetBalance(100)
		n, err := engs[1].AccountFixed(ctx)
		require.NoError(t, err)
		assert.Equal(t, 51, n)
		for _, e := range engs {
			require.NoError(t, e.Drain(ctx))
		}
		counts, err = ls.Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 51, counts[states.Done])
	})
}

// TestFleetIsChosen: fleet mode is the Fleet option's, never the store's
// kind: Fleet on a store engines cannot share is refused, naming the
// option; a lone engine on a shareable store drives every task of it
// (leases are not looked at) and says so in its log.
func TestFleetIsChosen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sim := providersim.New(providersim.Config{Seed: 9, Mix: providersim.NoErrors()})
		client, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: simKey, HTTPClient: sim.Client()})
		require.NoError(t, err)
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "lone.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		_, err = engine.Open(ctx, engine.Config{Store: st, API: client, Fleet: true})
		require.ErrorContains(t, err, "engine: config: Fleet: ")
		assert.ErrorContains(t, err, "persist.Leaser")

		ls := newLeasingStore(st)
		now := time.Now()
		tk := &persist.Task{ID: persist.NewID(), Method: "turnstile",
			Params:  map[string]string{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/"},
			Created: now, Updated: now, NextAt: now, Owner: "other", LeaseUntil: now.Add(time.Hour)}
		require.NoError(t, ls.Create(ctx, tk))
		var logs strings.Builder
		eng, err := engine.Open(ctx, engine.Config{Store: ls, API: client,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		defer eng.Close()
		res, err := eng.Wait(ctx, tk.ID)
		require.NoError(t, err, "a lone engine drives a task another engine leased")
		assert.Equal(t, states.Done, res.State)
		assert.Contains(t, logs.String(), "Fleet is off")
	})
}
