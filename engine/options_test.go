package engine_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The options of a request (issue 15): refs with explicit uniqueness, a
// deadline, the task's own retry limits and a priority, each kept with the
// task across a restart.

// TestEnqueueSaysAttached: Enqueue tells a new task from one the ref
// attached to; RefUnique refuses any stored ref before anything is stored
// or sent.
func TestEnqueueSaysAttached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		ctx := context.Background()
		first, err := b.eng.Enqueue(ctx, recaptcha("order-1"))
		require.NoError(t, err)
		assert.False(t, first.Attached)
		again, err := b.eng.Enqueue(ctx, recaptcha("order-1"))
		require.NoError(t, err)
		assert.Equal(t, engine.Submission{ID: first.ID, Attached: true}, again)

		unique := recaptcha("order-1")
		unique.IfRefExists = engine.RefUnique
		_, err = b.eng.Enqueue(ctx, unique)
		require.ErrorIs(t, err, engine.ErrRefExists)
		assert.ErrorContains(t, err, first.ID, "the error names the stored task")
		_, _, err = b.eng.SubmitMany(ctx, []engine.Request{recaptcha("order-2"), unique})
		require.ErrorIs(t, err, engine.ErrRefExists)
		_, err = b.eng.Get(ctx, "order-2")
		require.ErrorIs(t, err, persist.ErrNotFound, "nothing of a refused batch is stored")

		// Twice in one batch: the second finds the first.
		twice := recaptcha("order-3")
		twice.IfRefExists = engine.RefUnique
		_, _, err = b.eng.SubmitMany(ctx, []engine.Request{twice, twice})
		require.ErrorIs(t, err, engine.ErrRefExists)

		fresh := recaptcha("order-4")
		fresh.IfRefExists = engine.RefUnique
		sub, err := b.eng.Enqueue(ctx, fresh)
		require.NoError(t, err)
		assert.False(t, sub.Attached)
		require.NoError(t, b.eng.Drain(ctx))
		submits, _ := b.api.counts()
		assert.Equal(t, 2, submits, "order-1 once, order-4 once")
	})
}

// TestRequestOptionsValidated: options out of bounds are refused, naming
// the field, before anything is stored.
func TestRequestOptionsValidated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		for field, edit := range map[string]func(*engine.Request){
			"max_retries":   func(r *engine.Request) { r.MaxRetries = 101 },
			"max_resubmits": func(r *engine.Request) { r.MaxResubmits = 1000 },
			"priority":      func(r *engine.Request) { r.Priority = 1 << 40 },
			"if_ref_exists": func(r *engine.Request) { r.IfRefExists = 7 },
			"labels":        func(r *engine.Request) { r.Labels = map[string]string{"": "no key"} },
		} {
			req := recaptcha("bad")
			edit(&req)
			_, err := b.eng.Submit(context.Background(), req)
			require.ErrorIs(t, err, provider.ErrInvalid, field)
			var re *engine.RequestError
			require.ErrorAs(t, err, &re, field)
			assert.Equal(t, field, re.Field)
			assert.ErrorContains(t, err, "engine: "+field+": ")
		}
		_, err := b.eng.Get(context.Background(), "bad")
		require.ErrorIs(t, err, persist.ErrNotFound)
	})
}

// TestDeadline: a task ends Failed with DEADLINE_EXCEEDED at its deadline,
// in whatever state it waits, and nothing more is sent for it.
func TestDeadline(t *testing.T) {
	deadlined := func(d time.Duration) engine.Request {
		r := recaptcha("")
		r.Deadline = time.Now().Add(d)
		return r
	}
	check := func(t *testing.T, b *bundle, res *engine.Task, err error, from states.State, at time.Time) {
		t.Helper()
		require.ErrorIs(t, err, engine.ErrFailed)
		var te *engine.TaskError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, transitions.ClassPermanent, te.Class)
		assert.Equal(t, transitions.CodeDeadline, res.Code)
		h := b.history(res.ID)
		last := h[len(h)-1]
		assert.Equal(t, transitions.DeadlinePassed, last.Event)
		assert.Equal(t, from, last.From)
		assert.True(t, last.At.Equal(at), "failed at %s, the deadline is %s", last.At, at)
	}
	t.Run("while polling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = repeat("CAPCHA_NOT_READY", 1000)
			req := deadlined(42 * time.Second)
			res, err := b.eng.Solve(context.Background(), req)
			check(t, b, res, err, states.Polling, req.Deadline)
			_, polls := b.api.counts()
			// First poll at 20 s, then every 5 s: 20, 25, ..., 40.
			assert.Equal(t, 5, polls)
			<-time.After(time.Minute)
			_, after := b.api.counts()
			assert.Equal(t, polls, after, "not polled after its deadline")
		})
	})
	t.Run("in a backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 100)
			req := deadlined(7 * time.Second)
			req.MaxRetries = 50
			res, err := b.eng.Solve(context.Background(), req)
			check(t, b, res, err, states.Backoff, req.Deadline)
			assert.Equal(t, 2, res.Submits, "at 0 s and 5 s; the deadline ends the next backoff at 7 s")
		})
	})
	t.Run("passed when submitted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			req := deadlined(-time.Second)
			start := time.Now()
			res, err := b.eng.Solve(context.Background(), req)
			check(t, b, res, err, states.Submitting, start)
			submits, _ := b.api.counts()
			assert.Zero(t, submits, "nothing sent")
		})
	})
	t.Run("behind max_in_flight", func(t *testing.T) {
		// The deadline fails a task that waits for a submit slot: no
		// pacing holds back a task that will send nothing.
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{MaxInFlight: 1})
			b.api.pollPlan = repeat("CAPCHA_NOT_READY", 20)
			blocker, err := b.eng.Submit(context.Background(), recaptcha("blocker"))
			require.NoError(t, err)
			synctest.Wait()
			req := deadlined(3 * time.Second)
			res, err := b.eng.Solve(context.Background(), req)
			check(t, b, res, err, states.Submitting, req.Deadline)
			assert.Zero(t, res.Submits)
			_, err = b.eng.Wait(context.Background(), blocker)
			require.NoError(t, err, "the blocker solves once its plan runs out")
		})
	})
	t.Run("across a restart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = repeat("CAPCHA_NOT_READY", 1000)
			req := deadlined(90 * time.Second)
			id, err := b.eng.Submit(context.Background(), req)
			require.NoError(t, err)
			<-time.After(30 * time.Second)
			b.restart(engine.Policy{})
			res, err := b.eng.Wait(context.Background(), id)
			check(t, b, res, err, states.Polling, req.Deadline)
		})
	})
	t.Run("passed while the engine was down", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 100)
			req := deadlined(time.Minute)
			req.MaxRetries = 50
			id, err := b.eng.Submit(context.Background(), req)
			require.NoError(t, err)
			synctest.Wait()
			require.NoError(t, b.eng.Close())
			require.NoError(t, b.store.Close())
			<-time.After(2 * time.Minute)
			submits, _ := b.api.counts()
			b.openStore()
			b.open(engine.Policy{})
			restart := time.Now()
			res, err := b.eng.Wait(context.Background(), id)
			check(t, b, res, err, states.Backoff, restart)
			after, _ := b.api.counts()
			assert.Equal(t, submits, after, "nothing sent after the restart")
		})
	})
}

// TestTaskLimits: a task's own max_retries and max_resubmits replace the
// policy's, across a restart too.
func TestTaskLimits(t *testing.T) {
	t.Run("more retries than the policy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{MaxRetries: 1})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 100)
			req := recaptcha("")
			req.MaxRetries = 4
			id, err := b.eng.Submit(context.Background(), req)
			require.NoError(t, err)
			<-time.After(7 * time.Second) // two submits, in a backoff
			b.restart(engine.Policy{MaxRetries: 1})
			res, err := b.eng.Wait(context.Background(), id)
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, 5, res.Submits, "1 submit + the task's 4 retries")
			assert.Equal(t, transitions.RetriesExhausted, b.history(id)[len(b.history(id))-1].Event)
		})
	})
	t.Run("no retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.submitPlan = repeatErr(apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE"), 100)
			req := recaptcha("")
			req.MaxRetries = -1
			res, err := b.eng.Solve(context.Background(), req)
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, 1, res.Submits)
		})
	})
	t.Run("no resubmit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = []string{"ERROR_CAPTCHA_UNSOLVABLE"}
			req := recaptcha("")
			req.MaxResubmits = -5
			res, err := b.eng.Solve(context.Background(), req)
			require.ErrorIs(t, err, engine.ErrFailed)
			assert.Equal(t, "ERROR_CAPTCHA_UNSOLVABLE", res.Code)
			assert.Equal(t, 1, res.Submits)
			assert.Equal(t, -1, mustTask(t, b, res.ID).Options.MaxResubmits, "every negative limit is stored as -1")
		})
	})
	t.Run("zero keeps the policy's", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := setup(t, engine.Policy{})
			b.api.pollPlan = []string{"ERROR_CAPTCHA_UNSOLVABLE"}
			b.api.planTasks = 2
			res, err := b.eng.Solve(context.Background(), recaptcha(""))
			require.NoError(t, err)
			assert.Equal(t, 2, res.Resubmits, "the policy's 2")
		})
	})
}

// TestPriority: among tasks due to submit, higher priorities go first;
// equal ones in due order, then creation order.
func TestPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{SubmitRate: 1})
		ctx := context.Background()
		_, err := b.eng.Submit(ctx, recaptcha("first")) // takes the first slot
		require.NoError(t, err)
		synctest.Wait()
		var reqs []engine.Request
		for i, p := range []int{0, 0, -3, 10, 5, 0, 10} {
			r := recaptcha(string(rune('a' + i)))
			r.Priority = p
			reqs = append(reqs, r)
		}
		_, _, err = b.eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)
		require.NoError(t, b.eng.Drain(ctx))
		type sent struct {
			ref string
			at  time.Time
		}
		var order []sent
		for _, r := range reqs {
			h, err := b.eng.History(ctx, r.Ref)
			require.NoError(t, err)
			order = append(order, sent{r.Ref, at(t, h, transitions.SubmitSending, 0)})
		}
		var refs []string
		for len(order) > 0 {
			min := 0
			for i := range order {
				if order[i].at.Before(order[min].at) {
					min = i
				}
			}
			refs = append(refs, order[min].ref)
			order = append(order[:min], order[min+1:]...)
		}
		assert.Equal(t, []string{"d", "g", "e", "a", "b", "f", "c"}, refs,
			"priority 10 (d before g: created first), 5, 0 in creation order, -3")
	})
}

// TestTaskViewCarriesOptions: the one view of a task (Get, List, Wait and
// the transitions subscribers see) carries its options and its sequence.
func TestTaskViewCarriesOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		ctx := context.Background()
		trs, stop := b.eng.Subscribe(100)
		defer stop()
		req := recaptcha("view")
		req.Deadline = time.Now().Add(time.Hour)
		req.Priority, req.MaxRetries, req.MaxResubmits = 3, 5, -1
		res, err := b.eng.Solve(ctx, req)
		require.NoError(t, err)
		for _, v := range []*engine.Task{res, mustGet(t, b.eng, "view"), mustList(t, b.eng)[0]} {
			assert.True(t, v.Deadline.Equal(req.Deadline))
			assert.Equal(t, []int{3, 5, -1}, []int{v.Priority, v.MaxRetries, v.MaxResubmits})
			assert.Equal(t, uint64(len(b.history(res.ID))), v.Seq)
		}
		assert.Equal(t, req.Params, mustGet(t, b.eng, "view").Params, "Get returns the parameters")
		assert.Nil(t, res.Params)
		var last engine.Transition
		for len(trs) > 0 {
			last = <-trs
		}
		assert.Equal(t, states.Done, last.Task.State)
		assert.Equal(t, 3, last.Task.Priority)
		assert.Equal(t, last.Record.Seq, last.Task.Seq)
	})
}

func mustGet(t *testing.T, eng *engine.Engine, key string) *engine.Task {
	t.Helper()
	v, err := eng.Get(context.Background(), key)
	require.NoError(t, err)
	return v
}

func mustList(t *testing.T, eng *engine.Engine) []*engine.Task {
	t.Helper()
	l, err := eng.List(context.Background(), persist.ListOptions{})
	require.NoError(t, err)
	return l
}

// TestLabelsKeptAcrossARestart: a request's labels come back in every view
// of its task, and in the hook's transitions after a restart (when the
// engine has loaded the task from the store), and never reach the
// provider.
func TestLabelsKeptAcrossARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 3)
		labels := map[string]string{"pingback": "http://127.0.0.1:8/done", "order": "42"}
		req := recaptcha("labelled")
		req.Labels = labels
		trs, stop := b.eng.Subscribe(100)
		id, err := b.eng.Submit(context.Background(), req)
		require.NoError(t, err)
		req.Labels["order"] = "changed after Submit"
		labels = map[string]string{"pingback": "http://127.0.0.1:8/done", "order": "42"}
		assert.Equal(t, labels, mustGet(t, b.eng, id).Labels, "the labels stored are the ones submitted")
		<-time.After(10 * time.Second)
		stop()
		require.NotEmpty(t, trs)
		for tr := range trs {
			assert.Equal(t, labels, tr.Task.Labels, "the engine's own copy: %s", tr.Record.Event)
		}

		require.NoError(t, b.eng.Close())
		require.NoError(t, b.store.Close())
		b.openStore()
		var seen []engine.Transition
		var mu sync.Mutex
		eng, err := engine.Open(context.Background(), engine.Config{Store: b.store, API: b.api,
			OnTransition: func(tr engine.Transition) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, tr)
			}})
		require.NoError(t, err)
		b.eng = eng
		res, err := b.eng.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, labels, res.Labels)
		mu.Lock()
		require.NotEmpty(t, seen, "the task moved after the restart")
		for _, tr := range seen {
			assert.Equal(t, labels, tr.Task.Labels, "%s", tr.Record.Event)
		}
		mu.Unlock()
		for _, p := range b.api.sentParams() {
			for k, v := range p {
				assert.NotContains(t, v, "127.0.0.1:8", "param %s", k)
			}
		}
	})
}
