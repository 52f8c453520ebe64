package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// This file is where an answer becomes a decision and a decision becomes a
// committed move: decide reads the decision table, commit is the one gate
// every change of a task passes.

// Log keys.
const (
	keyTask  = "task"
	keyState = "state"
	keyEvent = "event"
	keyCode  = "code"
)

// decide asks the decision table what in calls for, with tk's state,
// counters and deadline, the breaker and the limits filled in: the
// policy's, or the task's own where it has them. The caller owns tk.
func (e *Engine) decide(tk *task, in transitions.Input) (transitions.Decision, error) {
	t := tk.cur()
	in.State = t.State
	if in.What == transitions.Due {
		in.Code = t.Code // a backoff keeps the code it waits for
	}
	in.Retries, in.Resubmits, in.PollSince = t.Retries, t.Resubmits, t.PollSince
	in.Deadline = t.Options.Deadline
	in.TokenMethod = provider.IsTokenMethod(t.Method)
	in.BreakerOpen = e.brk.isOpen()
	in.Now = time.Now()
	in.Jitter = rand.Float64()
	in.Limits = e.limits
	if n := t.Options.MaxRetries; n != 0 {
		in.Limits.MaxRetries = n
	}
	if n := t.Options.MaxResubmits; n != 0 {
		in.Limits.MaxResubmits = n
	}
	d, err := transitions.Decide(in)
	if err != nil {
		e.log.Error("no decision", keyTask, t.ID, keyState, t.State, "what", in.What, keyCode, in.Code, "err", err)
	}
	return d, err
}

// decideAndCommit decides what in calls for and commits it. The caller
// owns tk.
func (e *Engine) decideAndCommit(ctx context.Context, tk *task, in transitions.Input) error {
	d, err := e.decide(tk, in)
	if err != nil {
		return err
	}
	return e.commit(ctx, tk, d)
}

// commit is the gate every change of a task passes: fsm.Apply builds the
// task's next version and its record from d, the store commits both, and
// only then does the engine publish the move (waiters, subscribers, the
// hook, the counts Drain watches) and run d's effects (a ban, the
// breaker). On error nothing changed and no effect ran. The caller owns tk.
func (e *Engine) commit(ctx context.Context, tk *task, d transitions.Decision) error {
	cur := tk.cur()
	from := cur.State
	next, rec, err := fsm.Apply(cur, d)
	if err != nil {
		e.log.Error("illegal move refused", keyTask, cur.ID, keyState, from, keyEvent, d.Event, "err", err)
		return err
	}
	if err := e.store.Apply(ctx, next, rec); err != nil {
		e.stats.storeErr.Add(1)
		e.log.Error("transition not committed", keyTask, cur.ID, keyState, from, keyEvent, d.Event, "err", err)
		if errors.Is(err, persist.ErrConflict) {
			e.reload(ctx, tk)
		}
		return fmt.Errorf("engine: task %s: %s on %s: %w", cur.ID, from, d.Event, err)
	}
	e.count(d)
	level := slog.LevelInfo
	if d.Event == transitions.NotReady || d.Event == transitions.SubmitSending {
		level = slog.LevelDebug
	}
	// Checked first: the arguments would cost allocations on every
	// transition even when nothing is logged.
	if e.log.Enabled(ctx, level) {
		e.log.Log(ctx, level, "transition", keyTask, next.ID, "from", from, keyState, next.State, keyEvent, d.Event, keyCode, d.Code)
	}
	tk.moved(next.State, rec.Event)
	if tk.pending == nil {
		e.unrec.drop(next.ID) // its answer, if one was held, is on disk now
	}
	e.reg.publish(tk, from, next, *rec)
	for _, fx := range d.Effects {
		switch fx {
		case transitions.Ban:
			e.ban(d.Ban)
		case transitions.OpenBreaker:
			e.openBreaker(d.Code)
		}
	}
	return nil
}

// count adds a committed decision to the engine's counters.
func (e *Engine) count(d transitions.Decision) {
	s := &e.stats
	s.transitions.Add(1)
	if d.Charged {
		s.charged.Add(1)
	}
	switch d.Change {
	case transitions.CountRetry:
		s.retries.Add(1)
	case transitions.CountResubmit:
		s.resubmits.Add(1)
	}
}

// reload takes the stored task as the truth after a conflict. A commit
// reported failed may have been written after all (an fsync error after
// the write, a lost reply from a database server): the task then moved on
// disk without the engine knowing, and its view, waiters and counts catch
// up here. In a fleet, a task another engine has taken over is let go.
func (e *Engine) reload(ctx context.Context, tk *task) {
	cur := tk.cur()
	fresh, err := e.store.Get(ctx, cur.ID)
	if err != nil {
		e.log.Error("reload task after a conflict", keyTask, cur.ID, "err", err)
		return
	}
	fresh.Params = nil
	if e.fleet != nil && fresh.Owner != "" && fresh.Owner != e.fleet.owner {
		e.sched.markLost(tk)
	}
	if fresh.Seq == cur.Seq {
		tk.snap.Store(fresh)
		return
	}
	hist, err := e.store.History(ctx, cur.ID)
	if err != nil || len(hist) == 0 {
		e.log.Error("reload history after a conflict", keyTask, cur.ID, "err", err)
		return
	}
	last := hist[len(hist)-1]
	e.log.Warn("task moved on disk without the engine: taking the stored state", keyTask, fresh.ID,
		"from", cur.State, keyState, fresh.State, keyEvent, last.Event)
	tk.moved(fresh.State, last.Event)
	if tk.pending == nil {
		// A held answer found written after all (its commit reported
		// failed): it is on disk.
		e.unrec.drop(fresh.ID)
	}
	e.reg.publish(tk, cur.State, fresh, last)
}

// ban stops the requests b covers engine-wide until it ends. The tasks of
// one batched poll each carry the same ban: only the first to arrive
// extends the pauses, counts it and tells the fleet.
func (e *Engine) ban(b transitions.BanOrder) {
	fresh, shift := e.lim.ban(b, time.Now())
	if !fresh {
		return
	}
	e.sched.shiftPollTimers(shift)
	e.stats.bans.Add(1)
	if e.fleet != nil && e.fleet.shared != nil {
		if err := e.fleet.shared.Pause(e.ctx, b.Submits, b.Polls, b.Until); err != nil {
			e.log.Error("share a ban with the fleet", keyCode, b.Code, "err", err)
		}
	}
	e.log.Warn("rate ban: engine waits", keyCode, b.Code, "until", b.Until)
	e.sched.kick()
}

// openBreaker stops every submit of the engine (and of the fleet).
func (e *Engine) openBreaker(code string) {
	opened := e.brk.trip(code)
	if e.fleet != nil && e.fleet.shared != nil {
		if err := e.fleet.shared.SetBreaker(e.ctx, true, code); err != nil {
			e.log.Error("open the fleet's breaker", keyCode, code, "err", err)
		}
	}
	if opened {
		e.stats.trips.Add(1)
		e.log.Warn("account error: submits stopped until the account is usable again (a getbalance probe every account_probe_interval, or account-fixed)", keyCode, code)
		e.sched.kick()
	}
}
