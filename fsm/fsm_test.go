package fsm_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// legal returns the table as a map, for lookups.
func legal() map[states.State]map[transitions.Event]states.State {
	m := map[states.State]map[transitions.Event]states.State{}
	for _, e := range transitions.Table() {
		if m[e.From] == nil {
			m[e.From] = map[transitions.Event]states.State{}
		}
		m[e.From][e.Event] = e.To
	}
	return m
}

// allEvents is every event of the table plus ones the table never carries.
func allEvents() []transitions.Event {
	return append(transitions.Events(), transitions.Created, "teleport", "")
}

// TestContractMoves pins moves the product contract fixes, independently of
// how the table is written.
func TestContractMoves(t *testing.T) {
	tests := []struct {
		from states.State
		ev   transitions.Event
		to   states.State
	}{
		{states.Submitting, transitions.SubmitSending, states.Submitting},
		{states.Submitting, transitions.SubmitAccepted, states.Polling},
		{states.Submitting, transitions.TransientError, states.Backoff},
		{states.Submitting, transitions.PermanentError, states.Failed},
		{states.Submitting, transitions.AccountError, states.NeedsAccountFix},
		{states.Submitting, transitions.UnknownError, states.Failed},
		{states.Backoff, transitions.BackoffElapsed, states.Submitting},
		{states.Polling, transitions.NotReady, states.Polling},
		{states.Polling, transitions.Solved, states.Done},
		{states.Polling, transitions.ResubmitNeeded, states.Resubmitting},
		{states.Polling, transitions.PollTimeout, states.Failed},
		{states.Polling, transitions.AccountError, states.NeedsAccountFix},
		{states.Resubmitting, transitions.ResubmitStarted, states.Submitting},
		{states.NeedsAccountFix, transitions.AccountFixed, states.Submitting},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.from, tt.ev), func(t *testing.T) {
			got, err := fsm.Step(tt.from, tt.ev)
			require.NoError(t, err)
			assert.Equal(t, tt.to, got)
		})
	}
}

// TestLegalEdges fires every edge of the table through Step and through a
// Machine.
func TestLegalEdges(t *testing.T) {
	ctx := context.Background()
	for _, e := range transitions.Table() {
		t.Run(fmt.Sprintf("%s/%s", e.From, e.Event), func(t *testing.T) {
			got, err := fsm.Step(e.From, e.Event)
			require.NoError(t, err)
			assert.Equal(t, e.To, got, "Step")

			m, err := fsm.New(e.From)
			require.NoError(t, err)
			assert.True(t, m.Can(e.Event))
			got, err = m.Fire(ctx, e.Event)
			require.NoError(t, err)
			assert.Equal(t, e.To, got, "Fire")
			assert.Equal(t, e.To, m.Current())
		})
	}
}

// TestIllegalPairs tries every (state, event) pair the table lacks: each is
// refused with ErrIllegal and leaves the state as it was.
func TestIllegalPairs(t *testing.T) {
	ctx := context.Background()
	table := legal()
	known := map[transitions.Event]bool{}
	for _, ev := range transitions.Events() {
		known[ev] = true
	}
	n := 0
	for _, from := range states.All() {
		for _, ev := range allEvents() {
			if _, ok := table[from][ev]; ok {
				continue
			}
			n++
			t.Run(fmt.Sprintf("%s/%s", from, ev), func(t *testing.T) {
				got, err := fsm.Step(from, ev)
				require.ErrorIs(t, err, fsm.ErrIllegal)
				assert.Equal(t, from, got, "Step must not move")
				var ill *fsm.IllegalError
				require.ErrorAs(t, err, &ill)
				assert.Equal(t, from, ill.From)
				assert.Equal(t, ev, ill.Event)
				assert.Equal(t, !known[ev], ill.Unknown)

				m, err := fsm.New(from)
				require.NoError(t, err)
				assert.False(t, m.Can(ev))
				got, err = m.Fire(ctx, ev)
				require.ErrorIs(t, err, fsm.ErrIllegal)
				assert.NotErrorIs(t, err, fsm.ErrReplay)
				assert.Equal(t, from, got)
				assert.Equal(t, from, m.Current(), "Fire must not move")
			})
		}
	}
	// Terminal states alone refuse every event.
	assert.GreaterOrEqual(t, n, 2*len(allEvents()))
}

func TestStepInvalidState(t *testing.T) {
	for _, from := range []states.State{"", "Sleeping", "polling"} {
		got, err := fsm.Step(from, transitions.Solved)
		require.ErrorIs(t, err, fsm.ErrIllegal, "%q", from)
		assert.Equal(t, from, got)
	}
}

func TestIllegalErrorMessage(t *testing.T) {
	tests := []struct {
		from states.State
		ev   transitions.Event
		want string
	}{
		{states.Done, transitions.Solved, `fsm: illegal move: no transition from Done on "solved"`},
		{states.Failed, transitions.Cancelled, `fsm: illegal move: no transition from Failed on "cancelled"`},
		{states.Polling, "teleport", `fsm: illegal move: no transition from Polling on "teleport" (unknown event)`},
		{states.Polling, transitions.Created, `fsm: illegal move: no transition from Polling on "created" (unknown event)`},
		{"", transitions.Solved, `fsm: illegal move: no transition from [*] on "solved"`},
	}
	for _, tt := range tests {
		_, err := fsm.Step(tt.from, tt.ev)
		assert.EqualError(t, err, tt.want)
	}
}

// TestSelfTransitions: looplab reports a move to the same state as
// NoTransitionError; the machine must treat it as the success it is, and
// keep accepting events afterwards.
func TestSelfTransitions(t *testing.T) {
	ctx := context.Background()
	var self []transitions.Edge
	for _, e := range transitions.Table() {
		if e.From == e.To {
			self = append(self, e)
		}
	}
	// The two the engine fires most must be among them.
	assert.Contains(t, self, edge(states.Polling, transitions.NotReady))
	assert.Contains(t, self, edge(states.Submitting, transitions.SubmitSending))
	for _, e := range self {
		t.Run(fmt.Sprintf("%s/%s", e.From, e.Event), func(t *testing.T) {
			m, err := fsm.New(e.From)
			require.NoError(t, err)
			for range 3 {
				got, err := m.Fire(ctx, e.Event)
				require.NoError(t, err)
				assert.Equal(t, e.From, got)
				got, err = fsm.Step(e.From, e.Event)
				require.NoError(t, err)
				assert.Equal(t, e.From, got)
			}
			assert.Equal(t, e.From, m.Current())
		})
	}
}

func edge(from states.State, ev transitions.Event) transitions.Edge {
	for _, e := range transitions.Table() {
		if e.From == from && e.Event == ev {
			return e
		}
	}
	return transitions.Edge{}
}

func TestNewInvalidState(t *testing.T) {
	for _, s := range []states.State{"", "Sleeping", "done"} {
		m, err := fsm.New(s)
		require.ErrorIs(t, err, fsm.ErrInvalidState, "%q", s)
		assert.Nil(t, m)
	}
	for _, s := range states.All() {
		m, err := fsm.New(s)
		require.NoError(t, err)
		assert.Equal(t, s, m.Current())
	}
}

// TestFireCancelledContext: a done context refuses the move, and does not
// leave the looplab machine stuck mid-transition.
func TestFireCancelledContext(t *testing.T) {
	m, err := fsm.New(states.Polling)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := m.Fire(ctx, transitions.Solved)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, fsm.ErrIllegal)
	assert.Equal(t, states.Polling, got)
	assert.Equal(t, states.Polling, m.Current())

	got, err = m.Fire(context.Background(), transitions.Solved)
	require.NoError(t, err)
	assert.Equal(t, states.Done, got)
}

// TestMachineJourney walks one machine through a retry, a resubmit and an
// account fix to Done.
func TestMachineJourney(t *testing.T) {
	ctx := context.Background()
	m, err := fsm.New(transitions.Initial)
	require.NoError(t, err)
	steps := []struct {
		ev transitions.Event
		to states.State
	}{
		{transitions.SubmitSending, states.Submitting},
		{transitions.TransientError, states.Backoff},
		{transitions.BackoffElapsed, states.Submitting},
		{transitions.SubmitSending, states.Submitting},
		{transitions.SubmitAccepted, states.Polling},
		{transitions.NotReady, states.Polling},
		{transitions.ResubmitNeeded, states.Resubmitting},
		{transitions.ResubmitStarted, states.Submitting},
		{transitions.AccountError, states.NeedsAccountFix},
		{transitions.AccountFixed, states.Submitting},
		{transitions.SubmitAccepted, states.Polling},
		{transitions.Solved, states.Done},
	}
	for i, s := range steps {
		got, err := m.Fire(ctx, s.ev)
		require.NoError(t, err, "step %d %s", i, s.ev)
		require.Equal(t, s.to, got, "step %d %s", i, s.ev)
	}
	for _, ev := range transitions.Events() {
		assert.False(t, m.Can(ev), "Done must refuse %s", ev)
	}
}

// TestStepConcurrent runs random walks from many goroutines at once and
// checks every move against transitions.Next (which does not use looplab).
// Run with -race.
func TestStepConcurrent(t *testing.T) {
	evs := allEvents()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			cur := transitions.Initial
			for i := range 500 {
				ev := evs[rng.IntN(len(evs))]
				want, nextErr := transitions.Next(cur, ev)
				got, err := fsm.Step(cur, ev)
				switch {
				case nextErr == nil && (err != nil || got != want):
					errs <- fmt.Errorf("goroutine %d step %d: %s on %s = %s, %v; want %s", g, i, cur, ev, got, err, want)
					return
				case nextErr != nil && (!errors.Is(err, fsm.ErrIllegal) || got != cur):
					errs <- fmt.Errorf("goroutine %d step %d: %s on %s = %s, %v; want illegal", g, i, cur, ev, got, err)
					return
				}
				cur = got
				if cur.Terminal() {
					cur = transitions.Initial
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMachineConcurrent fires and reads one Machine from many goroutines;
// -race checks the locking, the count checks no move is lost.
func TestMachineConcurrent(t *testing.T) {
	ctx := context.Background()
	m, err := fsm.New(states.Polling)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				got, err := m.Fire(ctx, transitions.NotReady)
				assert.NoError(t, err)
				assert.Equal(t, states.Polling, got)
				assert.True(t, m.Can(transitions.Solved))
				_ = m.Current()
			}
		}()
	}
	wg.Wait()
	got, err := m.Fire(ctx, transitions.Solved)
	require.NoError(t, err)
	assert.Equal(t, states.Done, got)
}

func BenchmarkStep(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsm.Step(states.Polling, transitions.Solved); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepSelf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsm.Step(states.Polling, transitions.NotReady); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepIllegal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsm.Step(states.Done, transitions.Solved); err == nil {
			b.Fatal("want error")
		}
	}
}

func BenchmarkStepParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := fsm.Step(states.Polling, transitions.Solved); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkNewMachinePerStep is what Step avoids: a machine built per move.
func BenchmarkNewMachinePerStep(b *testing.B) {
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		m, err := fsm.New(states.Polling)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Fire(ctx, transitions.Solved); err != nil {
			b.Fatal(err)
		}
	}
}
