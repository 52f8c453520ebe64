package engine_test

import (
	"context"
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

// storedTasks creates n tasks in st, due at their NextAt, as a process
// that died would have left them.
func storedTasks(t *testing.T, st persist.Store, n int, nextAt func(i int) time.Time) []string {
	t.Helper()
	tasks := make([]*persist.Task, n)
	ids := make([]string, n)
	now := time.Now()
	for i := range tasks {
		r := recaptcha("")
		tasks[i] = &persist.Task{ID: persist.NewID(), Method: r.Method, Params: r.Params, State: transitions.Initial,
			Created: now, Updated: now, NextAt: nextAt(i)}
		ids[i] = tasks[i].ID
	}
	require.NoError(t, st.Create(context.Background(), tasks...))
	return ids
}

// TestPagingHoldsWhatIsDue: a lone engine holds at most MaxHeld tasks and
// pages the rest in as room is made; every task of the store ends.
func TestPagingHoldsWhatIsDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		require.NoError(t, b.eng.Close())
		ids := storedTasks(t, b.store, 600, func(int) time.Time { return time.Now() })
		eng := b.reopenWith(engine.Config{Store: b.store, API: b.api, MaxHeld: 100})
		ctx := context.Background()
		assert.LessOrEqual(t, eng.Stats().Held, int64(100), "at most MaxHeld in memory")
		most := int64(0)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				most = max(most, eng.Stats().Held)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
				if counts, _ := b.store.Count(ctx); counts[states.Done] == len(ids) {
					return
				}
			}
		}()
		require.NoError(t, eng.Drain(ctx))
		<-done
		assert.LessOrEqual(t, most, int64(100))
		for _, id := range ids {
			res, err := eng.Wait(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
		}
		submits, _ := b.api.counts()
		assert.Equal(t, len(ids), submits, "each paged-in task sent once")
	})
}

// TestPagingLeavesFarTasksOnDisk: tasks due in an hour are not held at
// Open; they are paged in as they fall due, and end.
func TestPagingLeavesFarTasksOnDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		require.NoError(t, b.eng.Close())
		soon := storedTasks(t, b.store, 10, func(int) time.Time { return time.Now() })
		later := storedTasks(t, b.store, 50, func(i int) time.Time { return time.Now().Add(time.Hour + time.Duration(i)*time.Second) })
		eng := b.reopenWith(engine.Config{Store: b.store, API: b.api})
		assert.Equal(t, int64(len(soon)), eng.Stats().Held, "only the tasks due soon are held")
		ctx := context.Background()
		<-time.After(30 * time.Minute)
		synctest.Wait()
		assert.Zero(t, eng.Stats().Held, "the first ten ended; the far ones wait on disk")
		require.NoError(t, eng.Drain(ctx))
		for _, id := range append(soon, later...) {
			res, err := eng.Wait(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
		}
		h := b.history(later[0])
		assert.False(t, h[1].At.Before(time.Now().Add(-time.Hour)), "sent when due, an hour after the start")
	})
}

// TestRestartHoldFromLastSubmit: a restart holds its first submit until
// the provider's 3-second window after the last recorded submit, not for
// 3 s from its own start.
func TestRestartHoldFromLastSubmit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		since time.Duration // from the last recorded submit to the restart
		want  time.Duration // from the restart to the first in.php
	}{
		{"a second after the last submit", time.Second, 2 * time.Second},
		{"a minute after", time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, engine.Policy{})
				require.NoError(t, b.eng.Close())
				ctx := context.Background()
				// A process that died right after the intent to submit.
				id := storedTasks(t, b.store, 1, func(int) time.Time { return time.Now() })[0]
				cur, err := b.store.Get(ctx, id)
				require.NoError(t, err)
				next := cur.Clone()
				next.Submits++
				require.NoError(t, b.store.Apply(ctx, next, &persist.Record{At: time.Now(), From: states.Submitting,
					Event: transitions.SubmitSending, To: states.Submitting}))
				<-time.After(tc.since)
				start := time.Now()
				sent := make(chan time.Time, 1)
				b.api.onSubmit = func(n int) {
					if n == 1 {
						sent <- time.Now()
					}
				}
				b.open(engine.Policy{})
				at := <-sent
				assert.Equal(t, tc.want, at.Sub(start).Round(100*time.Millisecond))
				h := b.history(id)
				assert.Contains(t, events(h), transitions.PossiblyCharged, "the submit in doubt is named")
			})
		})
	}
}

// noDueAt is a store written before persist.Task.DueAt: its Due orders by
// NextAt (here, a boltstore whose index is exact for these tasks) and
// leaves DueAt zero.
type noDueAt struct{ persist.Store }

func (s noDueAt) Due(ctx context.Context, opts persist.DueOptions) ([]*persist.Task, error) {
	list, err := s.Store.Due(ctx, opts)
	for _, t := range list {
		t.DueAt = time.Time{}
	}
	return list, err
}

// TestPagingWithAStoreWithoutDueAt: a store that leaves DueAt zero still
// pages: the engine reads on from the last task's NextAt (pages of more
// than one read, and a next page due later) instead of reading its first
// page again, and every task ends, sent once.
func TestPagingWithAStoreWithoutDueAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setup(t, engine.Policy{})
		require.NoError(t, b.eng.Close())
		start := time.Now()
		now := storedTasks(t, b.store, 1500, func(i int) time.Time { return start.Add(time.Duration(i) * time.Millisecond) })
		later := storedTasks(t, b.store, 20, func(i int) time.Time { return start.Add(10*time.Minute + time.Duration(i)*time.Second) })
		eng := b.reopenWith(engine.Config{Store: noDueAt{b.store}, API: b.api})
		ctx := context.Background()
		require.NoError(t, eng.Drain(ctx))
		for _, id := range append(now, later...) {
			res, err := eng.Wait(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, res.State)
		}
		submits, _ := b.api.counts()
		assert.Equal(t, len(now)+len(later), submits, "each task sent once")
	})
}
