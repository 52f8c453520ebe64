package engine_test

import (
	"context"
	"errors"
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

func TestResumeMidBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.submitPlan = []error{apiErr("in.php", "ERROR_NO_SLOT_AVAILABLE")}
		id, err := b.eng.Submit(context.Background(), recaptcha(""))
		require.NoError(t, err)
		<-time.After(3 * time.Second) // 3 s into the 5 s backoff
		synctest.Wait()
		h := b.history(id)
		require.Equal(t, transitions.TransientError, h[len(h)-1].Event)
		backoffAt := h[len(h)-1].At
		b.restart(engine.Policy{})
		res, err := b.eng.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		h = b.history(id)
		// The backoff ends 5 s after it began, not 5 s after the restart.
		assert.Equal(t, 5*time.Second, at(t, h, transitions.BackoffElapsed, 0).Sub(backoffAt))
	})
}

func TestResumeMidPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 2)
		id, err := b.eng.Submit(context.Background(), recaptcha(""))
		require.NoError(t, err)
		<-time.After(22 * time.Second) // first poll at 20 s, next due at 25 s
		synctest.Wait()
		b.restart(engine.Policy{})
		res, err := b.eng.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		h := b.history(id)
		assert.Equal(t, 5*time.Second, at(t, h, transitions.NotReady, 1).Sub(at(t, h, transitions.NotReady, 0)))
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits, "a polling task is not submitted again after a restart")
		assert.Equal(t, "1001", h[len(h)-1].ProviderID)
	})
}

// failingStore fails Apply for one event, as a crash between in.php's answer
// and its commit would leave things.
type failingStore struct {
	persist.Store
	failOn atomic.Value // transitions.Event
	failed atomic.Int32
}

func failOn(st persist.Store, ev transitions.Event) *failingStore {
	fs := &failingStore{Store: st}
	fs.failOn.Store(ev)
	return fs
}

var errDisk = errors.New("simulated power cut")

func (s *failingStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if rec.Event == s.failOn.Load().(transitions.Event) {
		s.failed.Add(1)
		return errDisk
	}
	return s.Store.Apply(ctx, t, rec)
}

func TestCrashBetweenAcceptAndCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		require.NoError(t, b.eng.Close())
		// An engine whose commit of the accept is lost.
		fs := failOn(b.store, transitions.SubmitAccepted)
		eng, err := engine.Open(context.Background(), engine.Config{Store: fs, API: b.api})
		require.NoError(t, err)
		b.api.onSubmit = func(n int) {}
		id, err := eng.Submit(context.Background(), recaptcha(""))
		require.NoError(t, err)
		synctest.Wait()
		require.Positive(t, fs.failed.Load())
		// The process dies here: close without draining, then resume on
		// the same file with a healthy store. Close names the accepted
		// (paid) answer it could not record.
		err = eng.Close()
		require.ErrorIs(t, err, engine.ErrUnrecorded)
		var sf *engine.StoreFailureError
		require.ErrorAs(t, err, &sf)
		require.Len(t, sf.Answers, 1)
		assert.Equal(t, id, sf.Answers[0].TaskID)
		assert.True(t, sf.Answers[0].Paid())
		assert.NotEmpty(t, sf.Answers[0].ProviderID)
		assert.ErrorIs(t, err, errDisk)
		b.restart(engine.Policy{})
		res, err := b.eng.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		h := b.history(id)
		var charged []persist.Record
		for _, r := range h {
			if r.Event == transitions.PossiblyCharged {
				charged = append(charged, r)
			}
		}
		require.NotEmpty(t, charged, "the lost accept is recorded, never hidden")
		assert.True(t, charged[0].PossiblyCharged)
		submits, _ := b.api.counts()
		assert.Equal(t, res.Submits, submits, "every in.php request is counted in the task")
		assert.GreaterOrEqual(t, submits, 2)
	})
}

func TestStoreFaultThenRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := failOn(b.store, transitions.NotReady)
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 3)
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		id, err := eng.Submit(context.Background(), recaptcha(""))
		require.NoError(t, err)
		<-time.After(21 * time.Second)
		synctest.Wait()
		require.Positive(t, fs.failed.Load())
		got, err := b.store.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, states.Polling, got.State, "no transition recorded that was not made")
		assert.Zero(t, got.Polls)
		h := b.history(id)
		assert.Equal(t, transitions.SubmitAccepted, h[len(h)-1].Event)
		fs.failOn.Store(transitions.Event("")) // the fault clears
		res, err := eng.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
	})
}

func TestGracefulClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		var ids []string
		for range 30 {
			id, err := b.eng.Submit(context.Background(), recaptcha(""))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		<-time.After(time.Second)
		require.NoError(t, b.eng.Close())
		_, err := b.eng.Submit(context.Background(), recaptcha(""))
		require.ErrorIs(t, err, engine.ErrClosed)
		b.restart(engine.Policy{})
		require.NoError(t, b.eng.Drain(context.Background()))
		for _, id := range ids {
			res, err := b.eng.Wait(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
			for _, r := range b.history(id) {
				assert.NotEqual(t, transitions.PossiblyCharged, r.Event, "a clean close leaves no submit in doubt")
			}
		}
		submits, _ := b.api.counts()
		assert.Equal(t, 30, submits)
	})
}

func TestBatchedPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		b.api.pollPlan = repeat("CAPCHA_NOT_READY", 3)
		reqs := make([]engine.Request, 200)
		for i := range reqs {
			reqs[i] = recaptcha("")
		}
		_, added, err := b.eng.SubmitMany(context.Background(), reqs)
		require.NoError(t, err)
		assert.Equal(t, 200, added)
		require.NoError(t, b.eng.Drain(context.Background()))
		b.api.mu.Lock()
		defer b.api.mu.Unlock()
		assert.Equal(t, 800, b.api.polledIDs, "4 answers per task")
		assert.LessOrEqual(t, b.api.pollCalls, 800/20, "polls are batched: %v", b.api.batchSizes)
		st := b.eng.Stats()
		assert.Equal(t, int64(200), st.SubmitRequests)
	})
}

func TestSubmitManyRefsAreIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		reqs := []engine.Request{recaptcha("a"), recaptcha("b"), recaptcha("a")}
		ids, added, err := b.eng.SubmitMany(context.Background(), reqs)
		require.NoError(t, err)
		assert.Equal(t, 2, added)
		assert.Equal(t, ids[0], ids[2])
		ids2, added2, err := b.eng.SubmitMany(context.Background(), reqs[:2])
		require.NoError(t, err)
		assert.Equal(t, 0, added2)
		assert.Equal(t, ids[:2], ids2)
	})
}

func TestBadInputSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		_, err := b.eng.Submit(context.Background(), engine.Request{Method: "userrecaptcha",
			Params: map[string]string{"pageurl": "https://example.com"}})
		require.ErrorContains(t, err, "googlekey")
		list, err := b.store.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, list, "nothing stored")
		submits, _ := b.api.counts()
		assert.Zero(t, submits)
	})
}

// flakyStore fails the first n commits of one event, either before
// writing (a clean failure) or after (the write landed, its report did not:
// an fsync error after the write, a lost reply from a database server).
type flakyStore struct {
	persist.Store
	event   transitions.Event
	written bool
	left    atomic.Int32
}

func (s *flakyStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if rec.Event != s.event || s.left.Add(-1) < 0 {
		return s.Store.Apply(ctx, t, rec)
	}
	if s.written {
		if err := s.Store.Apply(ctx, t, rec); err != nil {
			return err
		}
	}
	return errDisk
}

func TestCommitWrittenButReportedFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := &flakyStore{Store: b.store, event: transitions.Solved, written: true}
		fs.left.Store(5)
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		reqs := []engine.Request{recaptcha("a"), recaptcha("b"), recaptcha("c"), recaptcha("d"), recaptcha("e"), recaptcha("f")}
		ids, _, err := eng.SubmitMany(context.Background(), reqs)
		require.NoError(t, err)
		require.NoError(t, eng.Drain(context.Background()), "Drain ends although the engine was told the last commits failed")
		for _, id := range ids {
			res, err := eng.Wait(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
		}
		assert.LessOrEqual(t, fs.left.Load(), int32(0))
	})
}

func TestFailedAcceptCommitIsRetriedNotResent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		fs := &flakyStore{Store: b.store, event: transitions.SubmitAccepted}
		fs.left.Store(3)
		eng := b.reopenWith(engine.Config{Store: fs, API: b.api})
		res, err := eng.Solve(context.Background(), recaptcha(""))
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		submits, _ := b.api.counts()
		assert.Equal(t, 1, submits, "the accepted submit is committed late, never paid for twice")
		assert.NotContains(t, events(b.history(res.ID)), transitions.PossiblyCharged)
	})
}
