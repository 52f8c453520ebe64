package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// These tests pin what a review of the engine found: each failed before
// its fix.

// countingStore fails commits of chosen events (n times, or always) and
// counts every attempt.
type countingStore struct {
	persist.Store
	mu     sync.Mutex
	fail   map[transitions.Event]int // < 0: always
	called map[transitions.Event]int
}

func newCountingStore(st persist.Store, fail map[transitions.Event]int) *countingStore {
	return &countingStore{Store: st, fail: fail, called: map[transitions.Event]int{}}
}

func (s *countingStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	s.mu.Lock()
	s.called[rec.Event]++
	n := s.fail[rec.Event]
	if n > 0 {
		s.fail[rec.Event] = n - 1
	}
	s.mu.Unlock()
	if n != 0 {
		return errDisk
	}
	return s.Store.Apply(ctx, t, rec)
}

func (s *countingStore) calls(ev transitions.Event) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.called[ev]
}

func TestFailedCommitOfAPermanentErrorIsNotResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := newCountingStore(b.store, map[transitions.Event]int{transitions.PermanentError: 2})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_WRONG_GOOGLEKEY")}
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		res, err := eng.Solve(context.Background(), recaptcha(""))
		require.ErrorIs(t, err, engine.ErrFailed)
		assert.Equal(t, "ERROR_WRONG_GOOGLEKEY", res.Code)
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits, "a permanent error is never sent again")
		assert.NotContains(t, events(b.history(res.ID)), transitions.PossiblyCharged)
	})
}

func TestFailedTransientCommitKeepsItsCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := newCountingStore(b.store, map[transitions.Event]int{transitions.TransientError: 1})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE")}
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		res, err := eng.Solve(context.Background(), recaptcha(""))
		require.NoError(t, err)
		h := b.history(res.ID)
		assert.Equal(t, 5*time.Second, at(t, h, transitions.BackoffElapsed, 0).Sub(at(t, h, transitions.TransientError, 0)),
			"the backoff committed late still waits its 5 s")
		submits, _ := b.api.counts()
		assert.Equal(t, 2, submits)
	})
}

func TestParkingThatCannotCommitDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := newCountingStore(b.store, map[transitions.Event]int{transitions.BreakerOpen: -1})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_ZERO_BALANCE")}
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		ctx := context.Background()
		_, err := eng.Submit(ctx, recaptcha("a"))
		require.NoError(t, err)
		<-time.After(time.Second)
		_, err = eng.Submit(ctx, recaptcha("b"))
		require.NoError(t, err)
		<-time.After(10 * time.Second)
		assert.LessOrEqual(t, fs.calls(transitions.BreakerOpen), 12, "about one try a second, not a busy loop")
		assert.Positive(t, fs.calls(transitions.BreakerOpen))
	})
}

func TestAccountFixedWhileATaskIsBeingParked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		require.NoError(t, b.eng.Close())
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_ZERO_BALANCE")}
		var eng *engine.Engine
		var once sync.Once
		eng, err := engine.Open(context.Background(), engine.Config{Store: b.store, API: b.api,
			OnTransition: func(tr engine.Transition) {
				if tr.Record.Event == transitions.BreakerOpen {
					// A person fixes the account the moment the task is
					// parked, while its worker still holds it.
					once.Do(func() { _, _ = eng.AccountFixed(context.Background()) })
				}
			}})
		require.NoError(t, err)
		defer eng.Close()
		ctx := context.Background()
		_, err = eng.Submit(ctx, recaptcha("a"))
		require.NoError(t, err)
		<-time.After(time.Second)
		id, err := eng.Submit(ctx, recaptcha("b"))
		require.NoError(t, err)
		// Wait may return at the park; once its worker lets go, the task
		// is released too, and solved.
		<-time.After(time.Second)
		res, err := eng.Wait(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		assert.False(t, eng.BreakerOpen())
		assert.Contains(t, events(b.history(id)), transitions.AccountFixed)
	})
}

func TestCancelledBeforeItsTurnIsNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		gate := make(chan struct{})
		b.api.onSubmit = func(n int) {
			if n == 1 {
				<-gate
			}
		}
		eng := b.reopenWith(engine.Config{Store: b.store, API: b.api, Policy: engine.Policy{Concurrency: 1}})
		ctx := context.Background()
		_, err := eng.Submit(ctx, recaptcha("a"))
		require.NoError(t, err)
		<-time.After(10 * time.Millisecond)
		id, err := eng.Submit(ctx, recaptcha("b"))
		require.NoError(t, err)
		<-time.After(time.Second) // the scheduler holds b, waiting for the one worker
		require.NoError(t, eng.Cancel(ctx, id))
		close(gate)
		res, err := eng.Wait(ctx, id)
		require.ErrorIs(t, err, engine.ErrFailed)
		assert.Equal(t, transitions.CodeCancelled, res.Code)
		assert.Zero(t, res.Submits, "nothing sent after Cancel returned")
	})
}

// banAPI bans the first poll of task A and answers NOT_READY to B's.
type banAPI struct {
	mu sync.Mutex
	n  int
	k  map[string]int
}

func (a *banAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return map[int]string{1: "A", 2: "B"}[a.n], nil
}

func (a *banAPI) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]provider.Answer, len(ids))
	for i, id := range ids {
		a.k[id]++
		switch {
		case id == "A" && a.k[id] == 1:
			out[i] = provider.Answer{Code: "ERROR: 1001", Class: transitions.Classify("ERROR: 1001")}
		case id == "B" && a.k[id] == 1:
			out[i] = provider.Answer{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady}
		default:
			out[i] = provider.Answer{Token: "tok-" + id}
		}
	}
	return out, nil
}

func TestBanOnOneTaskDoesNotTimeOutOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		eng := b.reopenWith(engine.Config{Store: b.store, API: &banAPI{k: map[string]int{}}})
		ctx := context.Background()
		ida, err := eng.Submit(ctx, engine.Request{Method: "base64", Params: map[string]string{"body": pngBase64(200)}})
		require.NoError(t, err)
		<-time.After(time.Second)
		idb, err := eng.Submit(ctx, recaptcha(""))
		require.NoError(t, err)
		ra, err := eng.Wait(ctx, ida)
		require.NoError(t, err)
		rb, err := eng.Wait(ctx, idb)
		require.NoError(t, err, "B waited out A's 10-minute ban without failing POLL_TIMEOUT")
		assert.Equal(t, states.Done, ra.State)
		assert.Equal(t, states.Done, rb.State)
	})
}

// failBreakerStore is a fleet store whose breaker cannot be published.
type failBreakerStore struct {
	*leasingStore
	tries atomic.Int32
}

func (s *failBreakerStore) SetBreaker(ctx context.Context, open bool, code string) error {
	s.tries.Add(1)
	return errors.New("database down")
}

func TestFleetBreakerStaysOpenWhenItCannotBePublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "f.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		ls := &failBreakerStore{leasingStore: newLeasingStore(st)}
		api := newFake()
		api.submitPlan = repeatErr(apiErr("in.php", "ERROR_ZERO_BALANCE"), 100)
		eng, err := engine.Open(context.Background(), engine.Config{Store: ls, API: api, Fleet: true, Owner: "A", LeaseTTL: 10 * time.Second})
		require.NoError(t, err)
		defer eng.Close()
		for i := range 5 {
			_, err := eng.Submit(context.Background(), recaptcha(string(rune('a'+i))))
			require.NoError(t, err)
			<-time.After(3 * time.Second)
		}
		submits, _ := api.counts()
		assert.Equal(t, 1, submits, "an empty balance must not keep burning requests")
		assert.Greater(t, ls.tries.Load(), int32(1), "the engine keeps trying to publish its breaker")
	})
}

func TestLostLeaseWakesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "f.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		ls := newLeasingStore(st)
		api := newFake()
		api.pollPlan = repeat("CAPCHA_NOT_READY", 100)
		ctx := context.Background()
		a, err := engine.Open(ctx, engine.Config{Store: ls, API: api, Fleet: true, Owner: "A", LeaseTTL: 9 * time.Second})
		require.NoError(t, err)
		defer a.Close()
		id, err := a.Submit(ctx, recaptcha("x"))
		require.NoError(t, err)
		done := make(chan time.Time, 1)
		go func() {
			_, _ = a.Wait(ctx, id)
			done <- time.Now()
		}()
		<-time.After(2 * time.Second)
		ls.mu.Lock()
		ls.leases[id] = lease{"Z", time.Now().Add(time.Hour)} // another engine took it over
		ls.mu.Unlock()
		<-time.After(5 * time.Second) // A's renewal learns it lost the lease
		cur, err := ls.Get(ctx, id)
		require.NoError(t, err)
		next := cur.Clone()
		next.State, next.Token, next.Owner = states.Done, "tok", "Z"
		require.NoError(t, ls.Apply(ctx, next, &persist.Record{At: time.Now(), From: states.Polling,
			Event: transitions.Solved, To: states.Done}))
		finished := time.Now()
		woke := <-done
		assert.LessOrEqual(t, woke.Sub(finished), 2*time.Second, "Wait follows the store once the lease is lost")
	})
}

func TestBatchBanIsOneBan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollErrs = []error{apiErr("res.php", "ERROR: 1005")}
		reqs := make([]engine.Request, 30)
		for i := range reqs {
			reqs[i] = recaptcha("")
		}
		start := time.Now()
		ids, _, err := b.eng.SubmitMany(context.Background(), reqs)
		require.NoError(t, err)
		require.NoError(t, b.eng.Drain(context.Background()))
		assert.Equal(t, int64(1), b.eng.Stats().BansWaited, "one ban for the whole batch")
		assert.GreaterOrEqual(t, time.Since(start), 10*time.Minute)
		for _, id := range ids {
			res, err := b.eng.Wait(context.Background(), id)
			require.NoError(t, err, "no task fails for the ban")
			assert.Equal(t, states.Done, res.State)
		}
	})
}
