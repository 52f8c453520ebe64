package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// wallStep returns tm, which carries a monotonic clock reading (from
// time.Now), with its wall clock moved by d (whole seconds) and its
// monotonic reading kept: what time.Now returns after the system clock
// was stepped by d between two readings (NTP stepping it, a resume from
// suspend, which Linux's monotonic clock does not count). No API of the
// time package builds such a value, so it is written in place; the checks
// below fail the test should the layout of time.Time ever change.
func wallStep(t *testing.T, tm time.Time, d time.Duration) time.Time {
	t.Helper()
	const hasMonotonic, nsecBits = 1 << 63, 30
	type layout struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	require.Zero(t, d%time.Second)
	require.Equal(t, unsafe.Sizeof(layout{}), unsafe.Sizeof(tm))
	out := tm
	p := (*layout)(unsafe.Pointer(&out))
	require.NotZero(t, p.wall&hasMonotonic, "no monotonic reading")
	p.wall += uint64(int64(d/time.Second)) << nsecBits
	require.Equal(t, d, out.Round(0).Sub(tm.Round(0)), "the wall clock moved")
	require.Zero(t, out.Sub(tm), "the monotonic reading stayed")
	return out
}

// TestDueSurvivesClockStep: the due index keeps a task's place by wall
// times, the times it stores. The engine's NextAt comes from time.Now,
// with a monotonic reading, and so does the place the store remembers
// from its last commit; when the system clock is stepped between two
// polls, the two readings disagree. The task must stay readable, and held
// no later than its NextAt and at most persist.DueSlack before it.
func TestDueSurvivesClockStep(t *testing.T) {
	for _, step := range []time.Duration{2 * time.Minute, -2 * time.Minute, 50 * time.Second, -10 * time.Second} {
		t.Run(step.String(), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "step.db")
			s := open(t, path, &boltstore.Options{NoSync: true})
			task := &persist.Task{ID: persist.NewID(), Method: "turnstile"}
			require.NoError(t, s.Create(ctx, task))

			now := time.Now()
			task.NextAt = now
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting,
				Event: transitions.SubmitSending, To: states.Submitting}))
			// Five seconds later by the monotonic clock, step later by
			// the wall clock.
			task.State, task.ProviderID = states.Polling, "7234567890"
			task.NextAt = wallStep(t, now.Add(5*time.Second), step)
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting,
				Event: transitions.SubmitAccepted, To: states.Polling, ProviderID: task.ProviderID}))

			checkHeld := func(s *boltstore.Store) {
				t.Helper()
				got, err := s.Get(ctx, task.ID)
				require.NoError(t, err)
				assert.True(t, got.NextAt.Equal(task.NextAt))
				due, err := s.Due(ctx, persist.DueOptions{})
				require.NoError(t, err)
				require.Len(t, due, 1)
				assert.False(t, due[0].DueAt.After(due[0].NextAt), "held at %v, after its NextAt %v", due[0].DueAt, due[0].NextAt)
				assert.LessOrEqual(t, due[0].NextAt.Sub(due[0].DueAt), persist.DueSlack)
				// Every task due by its NextAt comes out of Until.
				due, err = s.Due(ctx, persist.DueOptions{Until: task.NextAt.Round(0)})
				require.NoError(t, err)
				assert.Len(t, due, 1)
			}
			checkHeld(s)
			// One more poll, read back from the file rather than from the
			// store's memory of its last commit.
			require.NoError(t, s.Close())
			s = open(t, path, &boltstore.Options{NoSync: true})
			checkHeld(s)
			task.NextAt = task.NextAt.Add(5 * time.Second)
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Polling,
				Event: transitions.NotReady, To: states.Polling, Code: "CAPCHA_NOT_READY"}))
			checkHeld(s)
		})
	}
}
