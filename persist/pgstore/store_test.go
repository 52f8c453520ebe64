package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/persisttest"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	persisttest.Run(t, func(t *testing.T) persist.Store { return pgstoretest.Open(t, nil) })
}

// newTasks creates n tasks named ref0..ref(n-1), with NextAt spread so that
// task i is due i seconds after base.
func newTasks(t *testing.T, s persist.Store, n int) []*persist.Task {
	t.Helper()
	base := time.Now().Add(-time.Hour)
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Ref: "ref" + strconv.Itoa(i), Method: "post",
			Params: map[string]string{"i": strconv.Itoa(i)}, NextAt: base.Add(time.Duration(i) * time.Second)}
	}
	require.NoError(t, s.Create(context.Background(), tasks...))
	return tasks
}

// step applies a transition to to on ev, from task's state.
func step(s persist.Store, task *persist.Task, ev transitions.Event, to states.State) error {
	rec := &persist.Record{From: task.State, Event: ev, To: to}
	c := task.Clone()
	c.State = to
	if err := s.Apply(context.Background(), c, rec); err != nil {
		return err
	}
	*task = *c
	return nil
}

func ids(ts []*persist.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func TestOpenAgainAndSchemaFromURL(t *testing.T) {
	ctx := context.Background()
	schema := pgstoretest.Schema(t)
	url := pgstoretest.WithSchema(t, schema)
	a, err := pgstore.Open(ctx, url, nil)
	require.NoError(t, err)
	defer a.Close()
	assert.Equal(t, schema, a.Schema(), "the URL's search_path names the schema")
	task := &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"k": "v"}}
	require.NoError(t, a.Create(ctx, task))

	// A second opener (another engine) finds the tables as they are.
	b, err := pgstore.Open(ctx, pgstoretest.URL(t), &pgstore.Options{Schema: schema})
	require.NoError(t, err)
	defer b.Close()
	got, err := b.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"k": "v"}, got.Params)

	// The default schema is not this one.
	assert.Equal(t, pgstore.DefaultSchema, "captchafsm")
}

func TestOpenConcurrently(t *testing.T) {
	ctx := context.Background()
	schema := pgstoretest.Schema(t)
	const n = 6
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = pgstore.Open(ctx, pgstoretest.URL(t), &pgstore.Options{Schema: schema}) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "opener %d", i)
		require.NoError(t, stores[i].Close())
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := pgstore.Open(ctx, "postgres://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2", nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-pw")
	assert.Contains(t, err.Error(), "127.0.0.1:1/none")

	_, err = pgstore.Open(ctx, "postgres://h/db", &pgstore.Options{Schema: strings.Repeat("s", 64)})
	assert.ErrorContains(t, err, "Options.Schema")
	_, err = pgstore.Open(ctx, "postgres://h/db", &pgstore.Options{MaxConns: -1})
	assert.ErrorContains(t, err, "Options.MaxConns")
	_, err = pgstore.Open(ctx, "postgres://h:notaport/db", nil)
	assert.Error(t, err)
}

func TestTextPostgreSQLCannotHold(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	bad := &persist.Task{ID: persist.NewID(), Ref: "a\x00b", Method: "post"}
	require.ErrorContains(t, s.Create(ctx, bad), "NUL")
	_, err := s.GetByRef(ctx, "a\x00b")
	require.ErrorIs(t, err, persist.ErrNotFound)
	_, err = s.Get(ctx, "\xff")
	require.ErrorIs(t, err, persist.ErrNotFound)

	task := &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"nul": "a\x00b"}}
	require.NoError(t, s.Create(ctx, task))
	rec := &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling,
		Detail: "bad \x00 \xff body"}
	task.State, task.Token = states.Polling, "t\x00k"
	require.NoError(t, s.Apply(ctx, task, rec))
	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, "a\x00b", got.Params["nul"], "params keep NUL (json escapes it)")
	assert.Equal(t, "t\uFFFDk", got.Token)
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, "bad \uFFFD \uFFFD body", hist[1].Detail)
}

func TestClaimOrderAndStates(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	tasks := newTasks(t, s, 8)
	// Not claimable: terminal, parked.
	require.NoError(t, step(s, tasks[0], transitions.PermanentError, states.Failed))
	require.NoError(t, step(s, tasks[1], transitions.AccountError, states.NeedsAccountFix))
	require.NoError(t, step(s, tasks[2], transitions.SubmitAccepted, states.Polling))
	require.NoError(t, step(s, tasks[2], transitions.Solved, states.Done))
	// Claimable in every driven state; a zero NextAt comes first.
	require.NoError(t, step(s, tasks[3], transitions.TransientError, states.Backoff))
	require.NoError(t, step(s, tasks[4], transitions.SubmitAccepted, states.Polling))
	require.NoError(t, step(s, tasks[5], transitions.SubmitAccepted, states.Polling))
	require.NoError(t, step(s, tasks[5], transitions.ResubmitNeeded, states.Resubmitting))
	tasks[7].NextAt = time.Time{}
	require.NoError(t, step(s, tasks[7], transitions.SubmitSending, states.Submitting))

	got, err := s.Claim(ctx, "a", 3, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{tasks[7].ID, tasks[3].ID, tasks[4].ID}, ids(got))
	for _, g := range got {
		assert.Equal(t, "a", g.Owner)
		assert.WithinDuration(t, time.Now().Add(time.Hour), g.LeaseUntil, time.Minute)
		assert.Nil(t, g.Params, "Claim returns tasks without params")
	}
	got, err = s.Claim(ctx, "a", 10, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{tasks[5].ID, tasks[6].ID}, ids(got), "held tasks are not returned again")
	got, err = s.Claim(ctx, "b", 10, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got, "every claimable task is leased")

	stored, err := s.Get(ctx, tasks[4].ID)
	require.NoError(t, err)
	assert.Equal(t, "a", stored.Owner)

	_, err = s.Claim(ctx, "", 1, time.Hour)
	assert.Error(t, err)
	_, err = s.Claim(ctx, "a", 1, 0)
	assert.Error(t, err)
	_, err = s.Claim(ctx, "a", -1, time.Hour)
	assert.Error(t, err)
}

// TestClaimExclusive: engines claiming at once never get the same task
// while its lease is live, and together get every task.
func TestClaimExclusive(t *testing.T) {
	ctx := context.Background()
	const engines, n = 8, 600
	stores := make([]*pgstore.Store, engines)
	schema := pgstoretest.Schema(t)
	for i := range stores {
		stores[i] = pgstoretest.Open(t, &pgstore.Options{Schema: schema, MaxConns: 4})
	}
	tasks := newTasks(t, stores[0], n)

	claimed := make([][]string, engines)
	errs := make([]error, engines)
	var wg sync.WaitGroup
	for e := range engines {
		wg.Go(func() {
			owner := "engine-" + strconv.Itoa(e)
			for {
				got, err := stores[e].Claim(ctx, owner, 7, time.Hour)
				if err != nil {
					errs[e] = err
					return
				}
				if len(got) == 0 {
					return
				}
				for _, g := range got {
					if g.Owner != owner {
						errs[e] = fmt.Errorf("claimed %s shows owner %s", g.ID, g.Owner)
						return
					}
					claimed[e] = append(claimed[e], g.ID)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for e := range engines {
		require.NoError(t, errs[e])
		for _, id := range claimed[e] {
			seen[id]++
			require.Equal(t, 1, seen[id], "task %s claimed twice", id)
		}
		lost, err := stores[e].Renew(ctx, "engine-"+strconv.Itoa(e), claimed[e], time.Hour)
		require.NoError(t, err)
		assert.Empty(t, lost)
	}
	require.Len(t, seen, n)
	for _, task := range tasks {
		assert.Equal(t, 1, seen[task.ID])
	}
	busy := 0
	for e := range engines {
		if len(claimed[e]) > 0 {
			busy++
		}
	}
	assert.Greater(t, busy, 1, "the engines claimed side by side")
	t.Logf("tasks per engine: %v", func() []int {
		var out []int
		for e := range engines {
			out = append(out, len(claimed[e]))
		}
		return out
	}())
}

func TestLeaseExpiryTakeover(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	tasks := newTasks(t, s, 2)

	// a's lease ends a microsecond after its claim: expired by the time
	// any later statement runs.
	got, err := s.Claim(ctx, "a", 1, time.Microsecond)
	require.NoError(t, err)
	require.Equal(t, []string{tasks[0].ID}, ids(got))
	aCopy := got[0]

	// Expired but not taken: still a's, and Renew revives it.
	lost, err := s.Renew(ctx, "a", []string{tasks[0].ID}, time.Microsecond)
	require.NoError(t, err)
	assert.Empty(t, lost)

	// b takes it over, and is the owner now.
	got, err = s.Claim(ctx, "b", 1, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []string{tasks[0].ID}, ids(got))
	bCopy := got[0]
	gone := persist.NewID()
	lost, err = s.Renew(ctx, "a", []string{tasks[0].ID, tasks[1].ID, gone}, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{tasks[0].ID, tasks[1].ID, gone}, lost, "a holds none of them")
	lost, err = s.Renew(ctx, "b", []string{tasks[0].ID}, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, lost)

	// a cannot commit a step of the task b drives; b can.
	err = step(s, aCopy, transitions.SubmitSending, states.Submitting)
	require.ErrorIs(t, err, persist.ErrConflict)
	assert.ErrorContains(t, err, "leased to b")
	require.NoError(t, step(s, bCopy, transitions.SubmitSending, states.Submitting))
	assert.Equal(t, "b", bCopy.Owner, "Apply keeps the lease as stored")
	stored, err := s.Get(ctx, tasks[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "b", stored.Owner)
	assert.True(t, stored.LeaseUntil.After(time.Now().Add(50*time.Minute)), "Apply left the lease alone: %v", stored.LeaseUntil)

	// A caller without an owner (the CLI's account-fixed) is not fenced.
	free := tasks[1].Clone()
	free.Owner = ""
	require.NoError(t, step(s, free, transitions.SubmitSending, states.Submitting))
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	tasks := newTasks(t, s, 3)
	got, err := s.Claim(ctx, "a", 3, time.Hour)
	require.NoError(t, err)
	require.Len(t, got, 3)
	// b's release of a's tasks does nothing.
	require.NoError(t, s.Release(ctx, "b", ids(tasks)))
	got, err = s.Claim(ctx, "b", 3, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, got)

	require.NoError(t, s.Release(ctx, "a", ids(tasks[:2])))
	got, err = s.Claim(ctx, "b", 3, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, ids(tasks[:2]), ids(got), "released tasks are free at once")
	lost, err := s.Renew(ctx, "a", ids(tasks), time.Hour)
	require.NoError(t, err)
	assert.Equal(t, ids(tasks[:2]), lost)
	require.NoError(t, s.Release(ctx, "a", nil))
}

func TestCreateKeepsLease(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	until := time.Now().Add(time.Hour)
	held := &persist.Task{ID: persist.NewID(), Method: "post", Owner: "a", LeaseUntil: until}
	free := &persist.Task{ID: persist.NewID(), Method: "post"}
	require.NoError(t, s.Create(ctx, held, free))
	got, err := s.Get(ctx, held.ID)
	require.NoError(t, err)
	assert.Equal(t, "a", got.Owner)
	assert.True(t, until.Equal(got.LeaseUntil))
	claimed, err := s.Claim(ctx, "b", 5, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{free.ID}, ids(claimed), "a task created leased is its creator's")
	lost, err := s.Renew(ctx, "a", []string{held.ID}, time.Hour)
	require.NoError(t, err)
	assert.Empty(t, lost)
}

func TestFleetConditions(t *testing.T) {
	ctx := context.Background()
	schema := pgstoretest.Schema(t)
	a := pgstoretest.Open(t, &pgstore.Options{Schema: schema})
	b := pgstoretest.Open(t, &pgstore.Options{Schema: schema})

	c, err := b.Conditions(ctx)
	require.NoError(t, err)
	assert.Equal(t, persist.Conditions{}, c)

	require.NoError(t, a.SetBreaker(ctx, true, "ERROR_ZERO_BALANCE"))
	c, err = b.Conditions(ctx)
	require.NoError(t, err)
	assert.True(t, c.BreakerOpen, "a's breaker is b's")
	assert.Equal(t, "ERROR_ZERO_BALANCE", c.BreakerCode)
	require.NoError(t, b.SetBreaker(ctx, false, "ignored"))
	c, err = a.Conditions(ctx)
	require.NoError(t, err)
	assert.False(t, c.BreakerOpen)
	assert.Empty(t, c.BreakerCode)

	// Pauses: the later one wins, an earlier one never shortens it; times
	// come back in this host's clock.
	soon, later := time.Now().Add(10*time.Second), time.Now().Add(time.Minute)
	require.NoError(t, a.Pause(ctx, true, false, later))
	require.NoError(t, b.Pause(ctx, true, true, soon))
	c, err = b.Conditions(ctx)
	require.NoError(t, err)
	const skew = 200 * time.Millisecond // round trips of the calls
	assert.WithinDuration(t, later, c.SubmitUntil, skew)
	assert.WithinDuration(t, soon, c.PollUntil, skew)
	require.NoError(t, a.Pause(ctx, false, true, time.Now().Add(-time.Second)), "a pause already over is a no-op")
	c2, err := a.Conditions(ctx)
	require.NoError(t, err)
	assert.WithinDuration(t, c.PollUntil, c2.PollUntil, skew)
}

// TestReserveSubmitSpacing: engines reserving at once get slots 1/rate
// apart, the first at about now.
func TestReserveSubmitSpacing(t *testing.T) {
	ctx := context.Background()
	schema := pgstoretest.Schema(t)
	const engines, each, rate = 3, 8, 20.0
	stores := make([]*pgstore.Store, engines)
	for i := range stores {
		stores[i] = pgstoretest.Open(t, &pgstore.Options{Schema: schema})
	}
	start := time.Now()
	var mu sync.Mutex
	var slots []time.Time
	var longest time.Duration
	var wg sync.WaitGroup
	errs := make([]error, engines)
	for e := range engines {
		wg.Go(func() {
			for range each {
				t0 := time.Now()
				at, err := stores[e].ReserveSubmit(ctx, rate)
				if err != nil {
					errs[e] = err
					return
				}
				mu.Lock()
				slots = append(slots, at)
				longest = max(longest, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, slots, engines*each)
	sortTimes(slots)
	gap := time.Duration(float64(time.Second) / rate)
	// Each slot is converted to this host's clock with an error under half
	// its call's round trip.
	tol := longest
	assert.WithinDuration(t, start, slots[0], tol+gap, "the first slot is about now")
	for i := 1; i < len(slots); i++ {
		assert.GreaterOrEqual(t, slots[i].Sub(slots[i-1]), gap-tol, "slots %d and %d", i-1, i)
	}
	span := slots[len(slots)-1].Sub(slots[0])
	assert.InDelta(t, float64(gap)*float64(len(slots)-1), float64(span), float64(2*tol),
		"the fleet's slots span (n-1)/rate: %v", span)

	_, err := stores[0].ReserveSubmit(ctx, 0)
	assert.Error(t, err)
}

func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func TestClosedLeaseAndFleet(t *testing.T) {
	ctx := context.Background()
	s := pgstoretest.Open(t, nil)
	require.NoError(t, s.Close())
	calls := map[string]func() error{
		"Claim":         func() error { _, err := s.Claim(ctx, "a", 1, time.Second); return err },
		"Renew":         func() error { _, err := s.Renew(ctx, "a", []string{"x"}, time.Second); return err },
		"Release":       func() error { return s.Release(ctx, "a", []string{"x"}) },
		"SetBreaker":    func() error { return s.SetBreaker(ctx, true, "X") },
		"Pause":         func() error { return s.Pause(ctx, true, true, time.Now().Add(time.Second)) },
		"Conditions":    func() error { _, err := s.Conditions(ctx); return err },
		"ReserveSubmit": func() error { _, err := s.ReserveSubmit(ctx, 1); return err },
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), persist.ErrClosed, name)
	}
}

func TestDropSchemaRefusesOthers(t *testing.T) {
	ctx := context.Background()
	url := pgstoretest.URL(t)
	require.NoError(t, pgstore.DropSchema(ctx, url, "test_never_created"), "an absent schema is no error")
	err := pgstore.DropSchema(ctx, url, "pg_catalog")
	require.ErrorIs(t, err, persist.ErrNotOurs)
	assert.True(t, errors.Is(err, persist.ErrNotOurs))
}

// TestExampleFleet runs ExampleOpen, which needs a server, and checks its
// output.
func TestExampleFleet(t *testing.T) {
	pgstoretest.URL(t)
	require.NoError(t, pgstore.DropSchema(context.Background(), pgstoretest.URL(t), "example"))
	out := captureStdout(t, ExampleOpen)
	assert.Equal(t, "a claimed 1 b claimed 1\na lost 1\na's step refused: true\na sees b's breaker: true ERROR_ZERO_BALANCE\n", out)
}

func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	fn()
	os.Stdout = old
	require.NoError(t, w.Close())
	return <-done
}

func TestIsURL(t *testing.T) {
	for db, want := range map[string]bool{
		"postgres://u@h/db": true, "postgresql://h/db?sslmode=disable": true, "POSTGRES://h/db": true,
		"captchafsm.db": false, "/var/lib/bots/postgres.db": false, "./postgres://x": false, "": false,
	} {
		assert.Equal(t, want, pgstore.IsURL(db), db)
	}
}

// TestClaimProbe: one engine of the fleet probes the account per interval,
// whichever asks first; the claim runs out with its interval.
func TestClaimProbe(t *testing.T) {
	ctx := context.Background()
	schema := pgstoretest.Schema(t)
	a := pgstoretest.Open(t, &pgstore.Options{Schema: schema})
	b := pgstoretest.Open(t, &pgstore.Options{Schema: schema})

	ok, err := a.ClaimProbe(ctx, "engine-a", time.Hour)
	require.NoError(t, err)
	assert.True(t, ok, "the first asks, the first probes")
	for _, s := range []*pgstore.Store{a, b} {
		ok, err = s.ClaimProbe(ctx, "engine-b", time.Hour)
		require.NoError(t, err)
		assert.False(t, ok, "one prober per interval, across the fleet")
	}

	other := pgstoretest.Schema(t)
	c := pgstoretest.Open(t, &pgstore.Options{Schema: other})
	ok, err = c.ClaimProbe(ctx, "engine-c", time.Microsecond)
	require.NoError(t, err)
	assert.True(t, ok)
	// A round trip lasts longer than the claim.
	ok, err = c.ClaimProbe(ctx, "engine-d", time.Microsecond)
	require.NoError(t, err)
	assert.True(t, ok, "a claim runs out with its interval")
}
