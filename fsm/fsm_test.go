package fsm_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
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

// TestLegalEdges fires every edge of the table through Step, twice (the
// pooled machine is reused).
func TestLegalEdges(t *testing.T) {
	for _, e := range transitions.Table() {
		t.Run(fmt.Sprintf("%s/%s", e.From, e.Event), func(t *testing.T) {
			for range 2 {
				got, err := fsm.Step(e.From, e.Event)
				require.NoError(t, err)
				assert.Equal(t, e.To, got, "Step")
			}
		})
	}
}

// TestIllegalPairs tries every (state, event) pair the table lacks: each is
// refused with ErrIllegal and leaves the state as it was.
func TestIllegalPairs(t *testing.T) {
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
				assert.NotErrorIs(t, err, fsm.ErrReplay)
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
			for range 3 {
				got, err := fsm.Step(e.From, e.Event)
				require.NoError(t, err)
				assert.Equal(t, e.From, got)
			}
			// The pooled machine still takes other moves afterwards.
			_, err := fsm.Step(e.From, transitions.Cancelled)
			require.NoError(t, err)
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

// TestApplyJourney walks one task through a retry, a resubmit and an
// account fix to Done, each move decided by the table and built by Apply.
func TestApplyJourney(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	lim := transitions.Limits{MaxRetries: 3, MaxResubmits: 2, FirstPollDelay: 5 * time.Second,
		PollInterval: 5 * time.Second, PollTimeout: time.Minute, BackoffBase: time.Second, BackoffMax: 10 * time.Second}
	cur := &persist.Task{ID: "t", Method: "base64", State: transitions.Initial, Seq: 1}
	steps := []struct {
		in transitions.Input
		to states.State
	}{
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Answer, Code: "ERROR_NO_SLOT_AVAILABLE"}, states.Backoff},
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Accepted, ProviderID: "71"}, states.Polling},
		{transitions.Input{What: transitions.Answer, Code: "CAPCHA_NOT_READY", Polled: true}, states.Polling},
		{transitions.Input{What: transitions.Answer, Code: "ERROR_CAPTCHA_UNSOLVABLE", Polled: true}, states.Resubmitting},
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Answer, Code: "ERROR_ZERO_BALANCE"}, states.NeedsAccountFix},
		{transitions.Input{What: transitions.Fixed}, states.Submitting},
		{transitions.Input{What: transitions.Due}, states.Submitting},
		{transitions.Input{What: transitions.Accepted, ProviderID: "72"}, states.Polling},
		{transitions.Input{What: transitions.Token, Token: "abc", Cost: "0.001", Polled: true}, states.Done},
	}
	for i, s := range steps {
		in := s.in
		in.State, in.Retries, in.Resubmits, in.PollSince = cur.State, cur.Retries, cur.Resubmits, cur.PollSince
		in.Now, in.Limits = t0.Add(time.Duration(i)*time.Second), lim
		d, err := transitions.Decide(in)
		require.NoError(t, err, "step %d", i)
		next, rec, err := fsm.Apply(cur, d)
		require.NoError(t, err, "step %d %s", i, d.Event)
		require.Equal(t, s.to, next.State, "step %d %s", i, d.Event)
		assert.Equal(t, rec.To, next.State)
		assert.Equal(t, cur.State, rec.From)
		assert.Equal(t, in.Now, rec.At)
		assert.NotSame(t, cur, next)
		cur = next
	}
	assert.Equal(t, "abc", cur.Token)
	assert.Equal(t, "0.001", cur.Cost)
	assert.Equal(t, "72", cur.ProviderID)
	assert.Equal(t, 4, cur.Submits)
	assert.Equal(t, 1, cur.Retries)
	assert.Equal(t, 1, cur.Resubmits)
	assert.Equal(t, 3, cur.Polls)
	assert.True(t, cur.NextAt.IsZero(), "a Done task has no next action")

	_, _, err := fsm.Apply(cur, transitions.Decision{Event: transitions.Solved})
	require.ErrorIs(t, err, fsm.ErrIllegal, "Done refuses every move")
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
