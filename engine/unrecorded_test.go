package engine_test

import (
	"context"
	"sync"
	"sync/atomic"
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

// outageStore fails every commit but the small ones (intents, not-ready
// polls) while its outage lasts, as a disk that fills does: a record that
// needs a new page fails, one that fits does not.
type outageStore struct {
	persist.Store
	down   atomic.Bool
	failed atomic.Int64
}

func (s *outageStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if s.down.Load() && rec.Event != transitions.SubmitSending && rec.Event != transitions.NotReady {
		s.failed.Add(1)
		return errDisk
	}
	return s.Store.Apply(ctx, t, rec)
}

// countingAPI counts the in.php requests sent while the store is down.
type countingAPI struct {
	*fakeAPI
	store       *outageStore
	duringFault atomic.Int64
}

func (a *countingAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	if a.store.down.Load() {
		a.duringFault.Add(1)
	}
	return a.fakeAPI.Submit(ctx, req)
}

// TestStoreBreaker: while an accepted (paid) answer is not on disk the
// engine sends no new in.php request; polls of paid tasks go on; the
// failing commits are retried with backoff; the outage shows in Stats and,
// past StoreFailureLimit, on StoreFailure. Once the store is back every
// task finishes and no task was paid twice (issue 11, point 1).
func TestStoreBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const concurrency = 8
		b := setup(t, engine.Policy{})
		st := &outageStore{Store: b.store}
		api := &countingAPI{fakeAPI: b.api, store: st}
		eng := b.reopenWith(engine.Config{Store: st, API: api,
			Policy: engine.Policy{Concurrency: concurrency, StoreFailureLimit: time.Minute}})
		ctx := context.Background()
		reqs := make([]engine.Request, 400)
		for i := range reqs {
			reqs[i] = recaptcha("")
		}
		ids, _, err := eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)

		<-time.After(5 * time.Second) // ~100 submitted, polling
		st.down.Store(true)
		<-time.After(30 * time.Second)
		synctest.Wait()
		held := eng.Unrecorded()
		require.NotEmpty(t, held, "answers of in.php wait for the store")
		assert.LessOrEqual(t, len(held), concurrency, "at most concurrency answers unrecorded")
		assert.Equal(t, int64(len(held)), eng.Stats().Unrecorded)
		assert.LessOrEqual(t, api.duringFault.Load(), int64(concurrency),
			"no new in.php once an answer is unrecorded: only those already leaving")
		polls := eng.Stats().PollRequests
		select {
		case f := <-eng.StoreFailure():
			t.Fatalf("reported before the limit: %v", f)
		default:
		}
		<-time.After(40 * time.Second)
		synctest.Wait()
		select {
		case f := <-eng.StoreFailure():
			require.ErrorIs(t, f, engine.ErrUnrecorded)
			require.ErrorIs(t, f, errDisk)
			assert.NotEmpty(t, f.Answers)
			assert.Contains(t, f.Error(), "possibly charged")
		default:
			t.Fatal("the outage past StoreFailureLimit is reported")
		}
		assert.Greater(t, eng.Stats().PollRequests, polls, "polls of paid tasks go on")
		counts, err := b.store.Count(ctx)
		require.NoError(t, err)
		waiting := 0
		for _, s := range states.ActiveStates() {
			waiting += counts[s]
		}
		tries := st.failed.Load()
		<-time.After(time.Minute)
		synctest.Wait()
		// By now each task's retries are 30 s apart: two or three a minute
		// (once a second each would be 60).
		assert.LessOrEqual(t, st.failed.Load()-tries, int64(3*waiting),
			"failed commits are retried with backoff, not every second")

		st.down.Store(false)
		require.NoError(t, eng.Drain(ctx))
		assert.Empty(t, eng.Unrecorded())
		for _, id := range ids {
			res, err := eng.Wait(ctx, id)
			require.NoError(t, err)
			require.Equal(t, states.Done, res.State)
		}
		submits, _ := b.api.counts()
		assert.Equal(t, len(ids), submits, "no task paid twice")
	})
}

// TestStopDuringStoreOutage: a stop while the store fails names every
// answer it could not record; after a restart on a healthy store each of
// those tasks is recorded as possibly charged, and finishes.
func TestStopDuringStoreOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		st := &outageStore{Store: b.store}
		eng := b.reopenWith(engine.Config{Store: st, API: b.api, Policy: engine.Policy{Concurrency: 4}})
		ctx := context.Background()
		reqs := make([]engine.Request, 50)
		for i := range reqs {
			reqs[i] = recaptcha("")
		}
		ids, _, err := eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)
		<-time.After(time.Second)
		st.down.Store(true)
		<-time.After(20 * time.Second)
		synctest.Wait()
		err = eng.Close()
		var sf *engine.StoreFailureError
		require.ErrorAs(t, err, &sf)
		require.NotEmpty(t, sf.Answers)
		assert.LessOrEqual(t, len(sf.Answers), 4)
		unrec := map[string]bool{}
		for _, u := range sf.Answers {
			assert.True(t, u.Paid())
			unrec[u.TaskID] = true
			assert.Contains(t, err.Error(), u.TaskID)
		}
		b.restart(engine.Policy{})
		require.NoError(t, b.eng.Drain(ctx))
		var mu sync.Mutex
		charged := 0
		for _, id := range ids {
			res, err := b.eng.Wait(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
			for _, r := range b.history(id) {
				if r.Event == transitions.PossiblyCharged {
					mu.Lock()
					charged++
					mu.Unlock()
					assert.True(t, unrec[id], "task %s recorded possibly charged but not named at the stop", id)
				}
			}
		}
		assert.Equal(t, len(unrec), charged, "each unrecorded answer is recorded as possibly charged after the restart")
	})
}
