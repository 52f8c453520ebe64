package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/captchafsm/captchafsm/transitions"
)

// classDoc says what the engine does with an answer of one class. The
// states it leads to are not written here: they are read from the edges
// of events, so the legend cannot contradict the transition table.
type classDoc struct {
	class  transitions.Class
	where  string
	does   string
	events []transitions.Event
}

// classDocs is the legend of errors.md, in the order of the contract's
// decision table. Every class of transitions.Classes must have an entry.
var classDocs = []classDoc{
	{transitions.ClassTransient, "in.php or res.php",
		"Wait (the code's own delay, else exponential backoff with jitter between `backoff_base` and `backoff_max`), " +
			"then submit again; give up after `max_retries`. On res.php the task is paid: poll again later, never resend. " +
			"A code with a ban makes every submit of the engine wait the ban out, and no retry is counted.",
		[]transitions.Event{transitions.TransientError, transitions.RateLimited, transitions.BackoffElapsed, transitions.RetriesExhausted}},
	{transitions.ClassPermanent, "in.php or res.php",
		"Stop; never send this task again.",
		[]transitions.Event{transitions.PermanentError}},
	{transitions.ClassAccount, "in.php or res.php",
		"Stop this task **and pause all submits of the engine** (the circuit breaker): an empty balance must not keep " +
			"burning requests. Tasks about to submit are parked too. `captchafsm account-fixed` moves them back.",
		[]transitions.Event{transitions.AccountError, transitions.BreakerOpen, transitions.AccountFixed}},
	{transitions.ClassNotReady, "res.php",
		"Poll again after `poll_interval`; past `poll_timeout` the task fails with code `POLL_TIMEOUT`.",
		[]transitions.Event{transitions.NotReady, transitions.PollTimeout}},
	{transitions.ClassResubmit, "res.php",
		"Send a new task with the same parameters; give up after `max_resubmits`.",
		[]transitions.Event{transitions.ResubmitNeeded, transitions.ResubmitStarted, transitions.ResubmitsExhausted}},
	{transitions.ClassUnknown, "either",
		"A code the catalogue does not hold: stop, keep the raw code in the task's history.",
		[]transitions.Event{transitions.UnknownError}},
}

// RenderErrors returns docs/errors.md: the legend of classes and the
// catalogue, one table per class with codes sorted, from
// transitions.Catalogue and transitions.Table.
func RenderErrors() ([]byte, error) {
	cat := transitions.Catalogue()
	table := transitions.Table()

	documented := map[transitions.Class]bool{}
	for _, d := range classDocs {
		documented[d.class] = true
	}
	for _, c := range transitions.Classes() {
		if !documented[c] {
			return nil, fmt.Errorf("docgen: errors.md: class %q has no legend entry in classDocs", c)
		}
	}

	guide, own := 0, 0
	for _, e := range cat {
		if !documented[e.Class] {
			return nil, fmt.Errorf("docgen: errors.md: code %s has class %q, which is not in transitions.Classes", e.Code, e.Class)
		}
		if e.FromGuide {
			guide++
		}
		if e.Where == transitions.Engine {
			own++
		}
	}

	p := newPage("Error codes")
	p.para("Every answer of the API is classified by the catalogue (`transitions.Catalogue`), and the class decides what "+
		"the engine does. The catalogue holds %d codes: the %d of the CaptchaAI error guide, with the guide's class, %d "+
		"from the provider's documentation, and the engine's own %d (where `engine`), written into histories for outcomes "+
		"that are not answers. `captchafsm errors` prints the same data (`--json` for scripts). "+
		"This page is generated from it; the decisions each class leads to are in [states.md](states.md#decisions).",
		len(cat), guide, len(cat)-guide-own, own)

	p.heading(2, "Classes")
	p.para("An answer `OK|…` is not a code: from in.php it accepts the task (`submit_accepted`, to `Polling`), from res.php " +
		"it carries the token (`solved`, to `Done`).")
	rows := make([][]string, 0, len(classDocs))
	for _, d := range classDocs {
		var edges []string
		for _, ev := range d.events {
			n := 0
			for _, e := range table {
				if e.Event == ev {
					edges = append(edges, fmt.Sprintf("%s → %s (%s)", code(e.From.String()), code(e.To.String()), code(string(ev))))
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("docgen: errors.md: class %q: event %q has no edge in transitions.Table", d.class, ev)
			}
		}
		rows = append(rows, []string{code(string(d.class)), d.where, d.does, strings.Join(edges, "<br>")})
	}
	p.table([]string{"Class", "Where", "Engine does", "Moves"}, rows)

	p.heading(2, "Columns")
	p.para("**Where**: the endpoint that answers with the code (`both`: either; `engine`: the engine's own). " +
		"**Retry**: the wait before the task is tried again — the code's own delay, its own backoff range, " +
		"or the policy's backoff (`backoff_base`…`backoff_max`). " +
		"**Ban**: an account- or IP-wide block the code announces; every request of the engine waits it out. " +
		"**Guide**: ✓ for the codes of the error guide, — for those from the provider's documentation.")

	p.heading(2, "Catalogue")
	for _, d := range classDocs {
		var entries []transitions.Entry
		for _, e := range cat {
			if e.Class == d.class {
				entries = append(entries, e)
			}
		}
		if len(entries) == 0 {
			continue
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Code < entries[j].Code })
		p.heading(3, fmt.Sprintf("%s (%d)", code(string(d.class)), len(entries)))
		rows = rows[:0]
		for _, e := range entries {
			rows = append(rows, []string{code(e.Code), string(e.Where), retry(e), ban(e), guideMark(e), e.Meaning, e.Fix})
		}
		p.table([]string{"Code", "Where", "Retry", "Ban", "Guide", "Meaning", "Fix"}, rows)
	}

	p.heading(2, "Codes the engine writes")
	p.para("Not answers of the API: the engine records these codes in a task's history, each classified like an answer.")
	rows = rows[:0]
	for _, e := range cat {
		if e.Where == transitions.Engine {
			rows = append(rows, []string{code(e.Code), code(string(e.Class)), e.Meaning})
		}
	}
	p.table([]string{"Code", "Class", "Meaning"}, rows)

	return p.Bytes(), nil
}

// retry describes when a task that got e is tried again.
func retry(e transitions.Entry) string {
	switch {
	case e.RetryDelay > 0:
		return duration(e.RetryDelay)
	case e.BackoffMin > 0 || e.BackoffMax > 0:
		return "backoff " + durationRange(e.BackoffMin, e.BackoffMax)
	case e.Class == transitions.ClassTransient && e.IsBan():
		return "after the ban"
	case e.Class == transitions.ClassTransient:
		return "policy backoff"
	case e.Class == transitions.ClassNotReady:
		return "`poll_interval`"
	case e.Class == transitions.ClassResubmit:
		return "new task"
	default:
		return "—"
	}
}

func ban(e transitions.Entry) string {
	if e.IsBan() {
		return duration(e.Ban)
	}
	return "—"
}

func guideMark(e transitions.Entry) string {
	if e.FromGuide {
		return "✓"
	}
	return "—"
}
