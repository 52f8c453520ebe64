package engine_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/transitions"
)

// gateStore is a failpoint at the commit: for each record it is asked to
// commit it records what the engine had already done about that move (the
// breaker, bans, the hook, a waiter woken), then fails the first try of the
// chosen events.
type gateStore struct {
	persist.Store
	eng  func() *engine.Engine
	seen func(transitions.Event) int // hook calls so far for the event

	mu     sync.Mutex
	fail   map[transitions.Event]int
	before []gateSnapshot
}

type gateSnapshot struct {
	event   transitions.Event
	breaker bool
	bans    int64
	hooked  int
	failed  bool
}

func (s *gateStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	e := s.eng()
	snap := gateSnapshot{event: rec.Event, breaker: e.BreakerOpen(), bans: e.Stats().BansWaited, hooked: s.seen(rec.Event)}
	s.mu.Lock()
	if s.fail[rec.Event] > 0 {
		s.fail[rec.Event]--
		snap.failed = true
	}
	s.before = append(s.before, snap)
	s.mu.Unlock()
	if snap.failed {
		return errDisk
	}
	return s.Store.Apply(ctx, t, rec)
}

// TestGateRunsEffectsAfterTheCommit: the breaker an account error opens, the
// ban a ban code announces and the hook of a move run only once the move
// is committed — not when its commit fails, and not before it.
func TestGateRunsEffectsAfterTheCommit(t *testing.T) {
	tests := []struct {
		name   string
		submit []error
		poll   []string
		event  transitions.Event
		check  func(t *testing.T, before gateSnapshot, e *engine.Engine)
	}{
		{name: "account error opens the breaker", submit: []error{apiErr("in.php", "ERROR_ZERO_BALANCE")},
			event: transitions.AccountError,
			check: func(t *testing.T, before gateSnapshot, e *engine.Engine) {
				assert.False(t, before.breaker, "breaker open before its commit")
				assert.True(t, e.BreakerOpen(), "breaker open after the commit")
			}},
		{name: "ban code bans", submit: []error{apiErr("in.php", "MAX_USER_TURN")},
			event: transitions.RateLimited,
			check: func(t *testing.T, before gateSnapshot, e *engine.Engine) {
				assert.Zero(t, before.bans, "ban applied before its commit")
				assert.EqualValues(t, 1, e.Stats().BansWaited, "ban applied once, after the commit")
			}},
		{name: "res.php ban bans", poll: []string{"ERROR: 1005", "ERROR: 1005"},
			event: transitions.RateLimited,
			check: func(t *testing.T, before gateSnapshot, e *engine.Engine) {
				assert.Zero(t, before.bans, "ban applied before its commit")
				assert.EqualValues(t, 1, e.Stats().BansWaited)
			}},
		{name: "solved wakes and hooks", event: transitions.Solved,
			check: func(t *testing.T, before gateSnapshot, e *engine.Engine) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := setup(t, engine.Policy{})
				b.api.submitPlan, b.api.pollPlan, b.api.planTasks = tt.submit, tt.poll, 1
				var hmu sync.Mutex
				hooked := map[transitions.Event]int{}
				var eng *engine.Engine
				gs := &gateStore{Store: b.store, eng: func() *engine.Engine { return eng },
					seen: func(ev transitions.Event) int {
						hmu.Lock()
						defer hmu.Unlock()
						return hooked[ev]
					},
					fail: map[transitions.Event]int{tt.event: 1}}
				eng = b.reopenWith(engine.Config{Store: gs, API: b.api, OnTransition: func(tr engine.Transition) {
					hmu.Lock()
					hooked[tr.Record.Event]++
					hmu.Unlock()
				}})
				ctx := context.Background()
				id, err := eng.Submit(ctx, recaptcha(""))
				require.NoError(t, err)
				// The first commit of the event fails: the task does not
				// settle then, and nothing of the move happens.
				res, _ := eng.Wait(ctx, id)
				require.NotNil(t, res)
				// Wait returns once the waiter is woken, which publish does
				// before it calls the hook: let the worker finish the move.
				synctest.Wait()

				gs.mu.Lock()
				defer gs.mu.Unlock()
				var tries []gateSnapshot
				for _, s := range gs.before {
					if s.event == tt.event {
						tries = append(tries, s)
					}
				}
				require.GreaterOrEqual(t, len(tries), 2, "the failed commit is tried again")
				assert.True(t, tries[0].failed)
				assert.False(t, tries[1].failed)
				for _, s := range tries {
					assert.Zero(t, s.hooked, "the hook saw %s before its commit", tt.event)
				}
				assert.False(t, tries[1].breaker && !tries[0].breaker, "no effect between the failed try and the next")
				assert.Equal(t, tries[0].bans, tries[1].bans, "no effect between the failed try and the next")
				hmu.Lock()
				assert.Equal(t, 1, hooked[tt.event], "the hook sees the committed move once")
				hmu.Unlock()
				h, err := b.store.History(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, 1, countEvents(h, tt.event), "committed once")
				tt.check(t, tries[0], eng)
			})
		})
	}
}
