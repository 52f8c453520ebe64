package crashtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Options tunes Check. The zero value checks a batch that must have ended
// with every task Done or Failed and no provider ban.
type Options struct {
	// Refs, when set, are the refs of the batch: each must name exactly
	// one task, and the store must hold no other task.
	Refs []string
	// AllowParked accepts tasks parked in NeedsAccountFix as ended.
	AllowParked bool
	// AllowUnsettled accepts tasks still in flight (a check taken between
	// two lives of an engine); a task whose history ends with the intent to
	// submit then counts as naming one possibly-charged submit, as the next
	// engine will record it.
	AllowUnsettled bool
	// AllowBans accepts bans in the provider's ledger.
	AllowBans bool
}

// Report is what Check found: the figures of a run and every broken rule.
type Report struct {
	// Tasks is the number of tasks in the store, States their count per
	// state.
	Tasks  int
	States map[states.State]int

	// Charged is the number of tasks the provider accepted and charged
	// (its ledger).
	Charged int
	// Orphaned counts charged tasks whose provider id no history holds:
	// paid for, never known to the database.
	Orphaned int
	// PossiblyCharged counts the history records marked possibly charged:
	// the submits whose outcome the engine could not know and said so.
	PossiblyCharged int
	// ResentAfterRestart counts PossiblyCharged events: a restarted engine
	// found a submit in flight (its intent committed, its answer not) and
	// sent the task again.
	ResentAfterRestart int
	// SubmitRequests is the number of in.php requests that reached the
	// provider; RecordedSubmits the number of submits the histories record
	// (SubmitSending). The engine records each intent before it sends, so
	// SubmitRequests ≤ RecordedSubmits.
	SubmitRequests, RecordedSubmits int
	// BreakerTrips counts AccountError records; SubmitsWhileOpen the
	// submits recorded while the breaker was open (a violation when > 0).
	BreakerTrips, SubmitsWhileOpen int
	// Bans counts the bans the provider started (its rate rules tripped).
	Bans int

	// Violations lists every broken rule, one line each; empty means the
	// run kept every guarantee Check knows.
	Violations []string
}

// OK reports whether no rule was broken.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// String is a one-line summary of the figures.
func (r *Report) String() string {
	return fmt.Sprintf("%d tasks %v; provider charged %d, orphaned %d, possibly-charged records %d (resent after a restart %d); "+
		"in.php requests %d of %d recorded; breaker trips %d; bans %d; %d violations",
		r.Tasks, r.States, r.Charged, r.Orphaned, r.PossiblyCharged, r.ResentAfterRestart,
		r.SubmitRequests, r.RecordedSubmits, r.BreakerTrips, r.Bans, len(r.Violations))
}

// Check reads every task and history of st and holds them against each
// other, against the state machine and against the provider's ledger led:
//
//   - every task has ended (Done or Failed; NeedsAccountFix with
//     AllowParked), unless AllowUnsettled;
//   - each history replays through the machine to the task's stored state,
//     its last record carries the task's sequence number, and the task's
//     submit count equals its SubmitSending records;
//   - no record follows a permanent error or a terminal state, and no
//     submit is recorded while the breaker was open (after an AccountError
//     record, until the next AccountFixed one, across every task);
//   - with Refs, each ref names exactly one task and no other task exists
//     (none lost, none duplicated);
//   - every in.php request the provider saw was recorded first, every
//     provider id a history names was issued by the provider, and every
//     task the provider charged is known to the database, or is accounted
//     for by a possibly-charged record of the task that sent it;
//   - the provider never banned the account, unless AllowBans.
func Check(ctx context.Context, st persist.Store, led providersim.Ledger, opts Options) (*Report, error) {
	tasks, err := st.List(ctx, persist.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("crashtest: list: %w", err)
	}
	r := &Report{Tasks: len(tasks), States: map[states.State]int{}, Charged: led.Charged(),
		SubmitRequests: led.Requests[providersim.KindSubmit]}
	for _, n := range led.Bans {
		r.Bans += n
	}
	if r.Bans > 0 && !opts.AllowBans {
		r.violate("the provider banned the account: %v", led.Bans)
	}

	byRef := map[string]int{}
	taskOf := map[string]string{}    // provider id → task id
	possibly := make(map[string]int) // task id → possibly-charged records
	var breaker []persist.Record     // AccountError and AccountFixed records
	type send struct {
		task string
		at   time.Time
	}
	var sends []send // SubmitSending records
	for _, t := range tasks {
		r.States[t.State]++
		if t.Ref != "" {
			byRef[t.Ref]++
		}
		ended := t.State.Terminal() || (opts.AllowParked && t.State.Settled())
		if !ended && !opts.AllowUnsettled {
			r.violate("task %s (%s) has not ended: %s", t.ID, t.Ref, t.State)
		}
		h, err := st.History(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("crashtest: history of %s: %w", t.ID, err)
		}
		if got, err := fsm.Replay(h); err != nil {
			r.violate("task %s: history does not replay: %v", t.ID, err)
		} else if got != t.State {
			r.violate("task %s: history gives %s, stored %s", t.ID, got, t.State)
		}
		if len(h) > 0 && h[len(h)-1].Seq != t.Seq {
			r.violate("task %s: last record has seq %d, task has %d", t.ID, h[len(h)-1].Seq, t.Seq)
		}
		sending, permanent := 0, false
		for i := range h {
			rec := &h[i]
			if permanent {
				r.violate("task %s: record %d (%s) follows a permanent error", t.ID, rec.Seq, rec.Event)
			}
			switch rec.Event {
			case transitions.SubmitSending:
				sending++
				sends = append(sends, send{t.ID, rec.At})
			case transitions.PermanentError:
				permanent = true
			case transitions.AccountError:
				r.BreakerTrips++
				breaker = append(breaker, *rec)
			case transitions.AccountFixed:
				breaker = append(breaker, *rec)
			case transitions.PossiblyCharged:
				r.ResentAfterRestart++
			}
			if rec.PossiblyCharged {
				r.PossiblyCharged++
				possibly[t.ID]++
			}
			if rec.ProviderID != "" {
				taskOf[rec.ProviderID] = t.ID
			}
		}
		if opts.AllowUnsettled && !ended && len(h) > 0 && transitions.InDoubt(h[len(h)-1].Event) {
			// A submit in flight when the engine stopped: the next engine
			// records it as possibly charged.
			possibly[t.ID]++
		}
		r.RecordedSubmits += sending
		if sending != t.Submits {
			r.violate("task %s: %d submits counted, %d recorded", t.ID, t.Submits, sending)
		}
	}

	for _, ref := range opts.Refs {
		switch n := byRef[ref]; n {
		case 1:
		case 0:
			r.violate("ref %s: lost (no task)", ref)
		default:
			r.violate("ref %s: %d tasks", ref, n)
		}
	}
	if opts.Refs != nil && len(tasks) != len(opts.Refs) {
		r.violate("%d tasks for %d refs", len(tasks), len(opts.Refs))
	}

	// The breaker: open from an AccountError until the next AccountFixed.
	slices.SortStableFunc(breaker, func(a, b persist.Record) int { return a.At.Compare(b.At) })
	for _, s := range sends {
		open, tie := false, false
		var since time.Time
		for _, b := range breaker {
			// Records of the same instant have no order (virtual time
			// stands still while the engine works, and the submit whose
			// answer opens the breaker shares its instant): a submit
			// there is not judged.
			if b.At.Equal(s.at) {
				tie = true
			}
			if !b.At.Before(s.at) {
				break
			}
			if open = b.Event == transitions.AccountError; open {
				since = b.At
			}
		}
		if open && !tie {
			r.SubmitsWhileOpen++
			r.violate("task %s: submit recorded at %s while the breaker was open (since %s)", s.task,
				s.at.Format("15:04:05.000000"), since.Format("15:04:05.000000"))
		}
	}

	if r.SubmitRequests > r.RecordedSubmits {
		r.violate("the provider saw %d in.php requests, the histories record %d", r.SubmitRequests, r.RecordedSubmits)
	}

	// The ledger: every charged task known, or accounted for.
	issued := make(map[string]providersim.TaskRecord, len(led.Tasks))
	for _, tr := range led.Tasks {
		issued[strconv.FormatInt(tr.ID, 10)] = tr
	}
	for pid, id := range taskOf {
		if _, ok := issued[pid]; !ok {
			r.violate("task %s: provider id %s was never issued by the provider", id, pid)
		}
	}
	// A charged task unknown to the database is matched to the task that
	// sent it through its content (an accepted sibling with the same
	// fingerprint), and must be covered by one of that task's
	// possibly-charged records; one no sibling names draws on the records
	// left over.
	tasksOfPrint := map[providersim.Fingerprint][]string{}
	for _, tr := range led.Tasks {
		if id, ok := taskOf[strconv.FormatInt(tr.ID, 10)]; ok && !slices.Contains(tasksOfPrint[tr.Fingerprint], id) {
			tasksOfPrint[tr.Fingerprint] = append(tasksOfPrint[tr.Fingerprint], id)
		}
	}
	budget := maps.Clone(possibly)
	unmatched := 0
	for _, tr := range led.Tasks {
		pid := strconv.FormatInt(tr.ID, 10)
		if _, ok := taskOf[pid]; ok {
			continue
		}
		r.Orphaned++
		owners := tasksOfPrint[tr.Fingerprint]
		if len(owners) == 0 {
			unmatched++
			continue
		}
		covered := false
		for _, id := range owners {
			if budget[id] > 0 {
				budget[id]--
				covered = true
				break
			}
		}
		if !covered {
			r.violate("provider task %s (charged %s) is unknown to the database and task %v names no possibly-charged submit for it",
				pid, tr.Accepted.Format("15:04:05.000"), owners)
		}
	}
	left := 0
	for _, n := range budget {
		left += n
	}
	if unmatched > left {
		r.violate("%d charged provider tasks are unknown to the database, only %d possibly-charged records are left to account for them", unmatched, left)
	}
	return r, nil
}
