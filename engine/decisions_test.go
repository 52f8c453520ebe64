package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestDecisionTable drives one task through every row of the contract's
// decision table with a scripted provider, and checks the final state, the
// code, the events in history and what was sent.
func TestDecisionTable(t *testing.T) {
	tests := []struct {
		name        string
		submitPlan  []error
		pollPlan    []string
		planTasks   int
		state       states.State
		code        string
		last        transitions.Event
		submits     int
		resubmits   int
		mustContain []transitions.Event
	}{
		{name: "ok", state: states.Done, last: transitions.Solved, submits: 1},
		{name: "transient then ok", submitPlan: []error{apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE")},
			state: states.Done, last: transitions.Solved, submits: 2,
			mustContain: []transitions.Event{transitions.TransientError, transitions.BackoffElapsed}},
		{name: "transient exhausted", submitPlan: repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 4),
			state: states.Failed, code: "ERROR_NO_SLOT_AVAILABLE", last: transitions.RetriesExhausted, submits: 4},
		{name: "transport exhausted", submitPlan: repeatErr(transportErr(false), 4),
			state: states.Failed, code: transitions.CodeTransport, last: transitions.RetriesExhausted, submits: 4},
		{name: "permanent at submit", submitPlan: []error{apiErr("in.php", "ERROR_BAD_PARAMETERS")},
			state: states.Failed, code: "ERROR_BAD_PARAMETERS", last: transitions.PermanentError, submits: 1},
		{name: "account at submit", submitPlan: []error{apiErr("in.php", "ERROR_ZERO_BALANCE")},
			state: states.NeedsAccountFix, code: "ERROR_ZERO_BALANCE", last: transitions.AccountError, submits: 1},
		{name: "unknown at submit", submitPlan: []error{apiErr("in.php", "ERROR_BRAND_NEW")},
			state: states.Failed, code: "ERROR_BRAND_NEW", last: transitions.UnknownError, submits: 1},
		{name: "resubmit then ok", pollPlan: []string{"ERROR_CAPTCHA_UNSOLVABLE"}, planTasks: 1,
			state: states.Done, last: transitions.Solved, submits: 2, resubmits: 1,
			mustContain: []transitions.Event{transitions.ResubmitNeeded, transitions.ResubmitStarted}},
		{name: "permanent at poll", pollPlan: []string{"CAPCHA_NOT_READY", "ERROR_WRONG_CAPTCHA_ID"},
			state: states.Failed, code: "ERROR_WRONG_CAPTCHA_ID", last: transitions.PermanentError, submits: 1},
		{name: "account at poll", pollPlan: []string{"ERROR_IP_NOT_ALLOWED"},
			state: states.NeedsAccountFix, code: "ERROR_IP_NOT_ALLOWED", last: transitions.AccountError, submits: 1},
		{name: "unknown at poll", pollPlan: []string{"ERROR_SOMETHING_ODD"},
			state: states.Failed, code: "ERROR_SOMETHING_ODD", last: transitions.UnknownError, submits: 1},
		{name: "transient at poll", pollPlan: []string{"ERROR_SERVER_ERROR"},
			state: states.Done, last: transitions.Solved, submits: 1,
			mustContain: []transitions.Event{transitions.TransientError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, engine.Policy{})
				b.api.submitPlan = tt.submitPlan
				b.api.pollPlan = tt.pollPlan
				b.api.planTasks = tt.planTasks
				res, err := b.eng.Solve(context.Background(), recaptcha(""))
				require.NotNil(t, res)
				assert.Equal(t, tt.state, res.State)
				assert.Equal(t, tt.code, res.Code)
				if tt.state == states.Done {
					assert.NoError(t, err)
				} else {
					var te *engine.TaskError
					require.ErrorAs(t, err, &te)
					assert.Equal(t, tt.state, te.State)
					assert.Equal(t, tt.code, te.Code)
				}
				h := b.history(res.ID)
				assert.Equal(t, tt.last, h[len(h)-1].Event)
				for _, ev := range tt.mustContain {
					assert.Contains(t, events(h), ev)
				}
				submits, _ := b.api.counts()
				assert.Equal(t, tt.submits, submits, "in.php requests")
				assert.Equal(t, tt.submits, res.Submits)
				assert.Equal(t, tt.resubmits, res.Resubmits)
			})
		})
	}
}

// TestSeedRetryCounts checks the defaults of the guide: 3 retries with
// the code's delay, 2 resubmits.
func TestSeedRetryCounts(t *testing.T) {
	t.Run("retries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 10)
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, 4, res.Submits, "1 submit + 3 retries")
			h := b.history(res.ID)
			// NO_SLOT waits its own 5 s before each retry.
			for i := range 3 {
				gap := at(t, h, transitions.BackoffElapsed, i).Sub(at(t, h, transitions.TransientError, i))
				assert.Equal(t, 5*time.Second, gap)
			}
		})
	})
	t.Run("exponential", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(transportErr(true), 10)
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.ErrorIs(t, err, engine.ErrFailed)
			h := b.history(res.ID)
			want := []time.Duration{3 * time.Second, 6 * time.Second, 12 * time.Second}
			for i, w := range want {
				gap := at(t, h, transitions.BackoffElapsed, i).Sub(at(t, h, transitions.TransientError, i))
				assert.InDelta(t, float64(w), float64(gap), 0.2*float64(w)+1, "retry %d", i+1)
			}
			// A transport failure after the request left is possibly charged.
			for _, r := range h {
				if r.Event == transitions.TransientError {
					assert.True(t, r.PossiblyCharged)
				}
			}
		})
	})
	t.Run("resubmits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = []string{"ERROR_CAPTCHA_UNSOLVABLE"}
			// every provider task answers UNSOLVABLE at its first poll
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, 3, res.Submits, "1 submit + 2 resubmits")
			assert.Equal(t, 2, res.Resubmits)
			assert.Equal(t, "ERROR_CAPTCHA_UNSOLVABLE", res.Code)
			h := b.history(res.ID)
			assert.Equal(t, transitions.ResubmitsExhausted, h[len(h)-1].Event)
		})
	})
	t.Run("too much requests stays within 3-10s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_TOO_MUCH_REQUESTS"), 3)
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.NoError(t, err)
			h := b.history(res.ID)
			for i := range 3 {
				gap := at(t, h, transitions.BackoffElapsed, i).Sub(at(t, h, transitions.TransientError, i))
				assert.GreaterOrEqual(t, gap, 3*time.Second)
				assert.LessOrEqual(t, gap, 10*time.Second)
			}
		})
	})
}

func TestPollTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 1000)
		start := time.Now()
		res, err := b.eng.Solve(context.Background(), recaptcha(""))
		var te *engine.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, transitions.CodePollTimeout, te.Code)
		assert.Equal(t, states.Failed, res.State)
		// 120 s from the accept: polls at 20, 25, ... 120 s.
		assert.Equal(t, 120*time.Second, time.Since(start))
		assert.Equal(t, 21, res.Polls)
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits, "a timed-out task is not resubmitted")
	})
}

func TestUnknownCodeKeptRaw(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_NEW_THING_2027")}
		res, err := b.eng.Solve(context.Background(), recaptcha(""))
		var te *engine.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, transitions.ClassUnknown, te.Class)
		h := b.history(res.ID)
		assert.Equal(t, "ERROR_NEW_THING_2027", h[len(h)-1].Code)
	})
}

// TestDeadlineStopsTheWaitNotTheTask: a caller's deadline on Solve or Wait
// stops the caller's wait; the submitted (paid) task goes on, and Wait
// collects its answer later, by id or by ref (issue 11, point 7).
func TestDeadlineStopsTheWaitNotTheTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 3)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := b.eng.Solve(ctx, recaptcha("login-42"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Nil(t, res)
		var pe *engine.PendingError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "login-42", pe.Ref)
		assert.Equal(t, states.Polling, pe.State, "submitted and accepted before the deadline")
		assert.Contains(t, err.Error(), "the task goes on")
		assert.Contains(t, err.Error(), pe.ID)

		// Wait under a deadline as short does the same.
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		_, err = b.eng.Wait(ctx2, pe.ID)
		require.ErrorAs(t, err, &pe)

		res, err = b.eng.Wait(context.Background(), "login-42")
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		assert.Equal(t, pe.ID, res.ID)
		assert.NotEmpty(t, res.Token)
		h := b.history(res.ID)
		assert.NotContains(t, events(h), transitions.Cancelled)
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits)
	})
}

// refReads counts the store's look-ups by ref.
type refReads struct {
	persist.Store
	n atomic.Int64
}

func (s *refReads) GetByRef(ctx context.Context, ref string) (*persist.Task, error) {
	s.n.Add(1)
	return s.Store.GetByRef(ctx, ref)
}

// TestRefsLookedUpOnlyWhenStored: a batch of new refs costs the store no
// look-up per request; a batch holding a ref already stored attaches that
// request to its task, creates the others, and only then reads by ref.
func TestRefsLookedUpOnlyWhenStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		st := &refReads{Store: b.store}
		eng := b.reopenWith(engine.Config{Store: st, API: b.api})
		ctx := context.Background()
		first, added, err := eng.SubmitMany(ctx, []engine.Request{recaptcha("a"), recaptcha("b"), recaptcha("a")})
		require.NoError(t, err)
		assert.Equal(t, 2, added)
		assert.Equal(t, first[0], first[2], "one ref, one task")
		assert.Zero(t, st.n.Load(), "new refs are not looked up")

		ids, added, err := eng.SubmitMany(ctx, []engine.Request{recaptcha("c"), recaptcha("b"), recaptcha("")})
		require.NoError(t, err)
		assert.Equal(t, 2, added, "c and the task without a ref")
		assert.Equal(t, first[1], ids[1], "b attaches to its task")
		assert.NotContains(t, first, ids[0])
		assert.Positive(t, st.n.Load(), "a stored ref is looked up")
		require.NoError(t, eng.Drain(ctx))
		counts, err := b.store.Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 4, counts[states.Done], "a, b, c and the one without a ref: %v", counts)
	})
}

// TestRefs: the same ref with the same request attaches to the task; with
// another method or other parameters it is an error naming the ref, and
// nothing is stored or sent. Get, Wait, History and Cancel take a ref
// wherever they take an id (issue 11, point 6).
func TestRefs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		ctx := context.Background()
		img := engine.Request{Method: "base64", Ref: "img-0", Params: map[string]string{"body": pngBase64(500)}}
		res, err := b.eng.Solve(ctx, img)
		require.NoError(t, err)

		again, err := b.eng.Solve(ctx, img)
		require.NoError(t, err, "the same request attaches")
		assert.Equal(t, res.ID, again.ID)
		assert.Equal(t, res.Token, again.Token)

		for _, other := range []engine.Request{
			{Method: "turnstile", Ref: "img-0", Params: map[string]string{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://other.example"}},
			{Method: "base64", Ref: "img-0", Params: map[string]string{"body": pngBase64(500), "numeric": "1"}},
		} {
			_, err = b.eng.Solve(ctx, other)
			require.ErrorIs(t, err, engine.ErrRefConflict)
			assert.Contains(t, err.Error(), `"img-0"`)
			_, _, err = b.eng.SubmitMany(ctx, []engine.Request{recaptcha("fresh"), other})
			require.ErrorIs(t, err, engine.ErrRefConflict)
		}
		_, _, err = b.eng.SubmitMany(ctx, []engine.Request{recaptcha("twice"), {Method: "base64", Ref: "twice", Params: img.Params}})
		require.ErrorIs(t, err, engine.ErrRefConflict, "a conflict inside one batch")
		_, err = b.eng.Get(ctx, "fresh")
		require.ErrorIs(t, err, persist.ErrNotFound, "nothing of a refused batch is stored")
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits, "nothing sent for the refused requests")

		got, err := b.eng.Get(ctx, "img-0")
		require.NoError(t, err)
		assert.Equal(t, res.ID, got.ID)
		h, err := b.eng.History(ctx, "img-0")
		require.NoError(t, err)
		assert.Equal(t, transitions.Solved, h[len(h)-1].Event)
		assert.ErrorIs(t, b.eng.Cancel(ctx, "img-0"), engine.ErrNotCancellable)
		_, err = b.eng.Wait(ctx, "no-such-ref")
		assert.ErrorIs(t, err, persist.ErrNotFound)
	})
}

func TestCancel(t *testing.T) {
	t.Run("explicit, while polling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = repeat("CAPCHA_NOT_READY", 1000)
			id, err := b.eng.Submit(context.Background(), recaptcha(""))
			require.NoError(t, err)
			<-time.After(40 * time.Second)
			require.NoError(t, b.eng.Cancel(context.Background(), id))
			res, err := b.eng.Wait(context.Background(), id)
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, states.Failed, res.State)
			assert.Equal(t, transitions.CodeCancelled, res.Code)
			h := b.history(res.ID)
			assert.Equal(t, transitions.Cancelled, h[len(h)-1].Event)
			assert.Equal(t, states.Polling, h[len(h)-1].From)
		})
	})
	t.Run("in backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 10)
			id, err := b.eng.Submit(context.Background(), recaptcha(""))
			require.NoError(t, err)
			<-time.After(2 * time.Second) // virtual time
			synctest.Wait()
			require.NoError(t, b.eng.Cancel(context.Background(), id))
			res, err := b.eng.Wait(context.Background(), id)
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, transitions.CodeCancelled, res.Code)
			submits, _ := b.api.counts()
			assert.Equal(t, 1, submits, "nothing is sent after a cancel")
			assert.ErrorIs(t, b.eng.Cancel(context.Background(), id), engine.ErrNotCancellable)
		})
	})
}

func TestAccountBreakerAndFix(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprintf("release delayed %s", delay), func(t *testing.T) {
			if delay > 0 {
				defer engine.SetReleaseDelay(delay)()
			}
			accountBreakerAndFix(t)
		})
	}
}

func accountBreakerAndFix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{Concurrency: 4})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_ZERO_BALANCE")}
		var ids []string
		for i := range 20 {
			id, err := b.eng.Submit(context.Background(), recaptcha(string(rune('a'+i))))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		ctx := context.Background()
		require.NoError(t, b.eng.Drain(ctx))
		assert.True(t, b.eng.BreakerOpen())
		submits, _ := b.api.counts()
		assert.LessOrEqual(t, submits, 4, "at most concurrency submits once the breaker trips")
		parked := 0
		for _, id := range ids {
			res, err := b.eng.Wait(ctx, id)
			if res.State == states.Done {
				continue // accepted before the breaker tripped
			}
			require.ErrorIs(t, err, engine.ErrNeedsAccountFix)
			parked++
		}
		assert.GreaterOrEqual(t, parked, 20-4+1, "every task not yet sent is parked without sending")
		n, err := b.eng.AccountFixed(ctx)
		require.NoError(t, err)
		assert.Equal(t, parked, n)
		require.NoError(t, b.eng.Drain(ctx))
		for _, id := range ids {
			res, err := b.eng.Wait(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
		}
	})
}

func TestBanWaitedOut(t *testing.T) {
	t.Run("MAX_USER_TURN pauses every submit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{Concurrency: 1})
			b.api.submitPlan = []error{apiErr("in.php", "MAX_USER_TURN")}
			start := time.Now()
			id1, err := b.eng.Submit(context.Background(), recaptcha("a"))
			require.NoError(t, err)
			id2, err := b.eng.Submit(context.Background(), recaptcha("b"))
			require.NoError(t, err)
			require.NoError(t, b.eng.Drain(context.Background()))
			for _, id := range []string{id1, id2} {
				res, err := b.eng.Wait(context.Background(), id)
				require.NoError(t, err)
				assert.Equal(t, 0, mustTask(t, b, id).Retries, "a ban is not a retry")
				_ = res
			}
			h2 := b.history(id2)
			assert.GreaterOrEqual(t, at(t, h2, transitions.SubmitSending, 0).Sub(start), 10*time.Second,
				"the other task waited for the ban too")
		})
	})
	t.Run("ERROR 1005 on res.php does not fail the task", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = []string{"ERROR: 1005"}
			start := time.Now()
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
			assert.GreaterOrEqual(t, time.Since(start), 10*time.Minute)
			assert.Contains(t, events(b.history(res.ID)), transitions.RateLimited)
		})
	})
}

func mustTask(t *testing.T, b *bundle, id string) *persist.Task {
	t.Helper()
	tk, err := b.store.Get(context.Background(), id)
	require.NoError(t, err)
	return tk
}

func TestWaitUnknownTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		_, err := b.eng.Wait(context.Background(), "0190d6a0-0000-7000-8000-000000000000")
		require.Error(t, err)
		assert.False(t, errors.Is(err, engine.ErrFailed))
	})
}

// TestBadRefRefused: a ref the store could not key is refused before
// anything is stored or sent, by the library as by the CLI.
func TestBadRefRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		for _, ref := range []string{strings.Repeat("r", persist.MaxRefLen+1), "a\x00b", "\xff"} {
			_, err := b.eng.Submit(context.Background(), recaptcha(ref))
			require.ErrorIs(t, err, persist.ErrInvalidRef, "%q", ref)
		}
		counts, err := b.store.Count(context.Background())
		require.NoError(t, err)
		assert.Empty(t, counts[states.Submitting])
		submits, _ := b.api.counts()
		assert.Zero(t, submits)
	})
}
