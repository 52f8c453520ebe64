package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// activeStates are the states an engine drives.
var activeStates = states.ActiveStates()

// tracker learns, through the engine's OnTransition hook, which tasks
// settle. The hook only queues; a printer goroutine writes.
type tracker struct {
	mu      sync.Mutex
	final   map[string]states.State
	queue   []engine.Task
	notify  chan struct{}
	closed  bool
	watched map[string]bool // nil: every task counts
}

func newTracker() *tracker {
	return &tracker{final: map[string]states.State{}, notify: make(chan struct{}, 1)}
}

// hook is the engine's OnTransition.
func (t *tracker) hook(tr engine.Transition) {
	if tr.Record.To.Settled() {
		t.add(tr.Task)
		return
	}
	if tr.Record.From == states.NeedsAccountFix {
		// Released by account-fixed: no longer settled.
		t.mu.Lock()
		delete(t.final, tr.Task.ID)
		t.mu.Unlock()
	}
}

// add reports task as settled (once per state it settles in).
func (t *tracker) add(task engine.Task) {
	t.mu.Lock()
	if prev, ok := t.final[task.ID]; ok && prev == task.State {
		t.mu.Unlock()
		return
	}
	t.final[task.ID] = task.State
	t.queue = append(t.queue, task)
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// take returns the queued tasks.
func (t *tracker) take() []engine.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queue
	t.queue = nil
	return q
}

// counts returns how many tasks settled, per state, among watched ones.
func (t *tracker) counts() map[states.State]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := map[states.State]int{}
	for id, s := range t.final {
		if t.watched == nil || t.watched[id] {
			c[s]++
		}
	}
	return c
}

// exitCode is the contract's status for a set of final states: 3 when any
// task needs an account fix, else 2 when any failed, else 0.
func exitCode(c map[states.State]int) int {
	switch {
	case c[states.NeedsAccountFix] > 0:
		return ExitNeedsAccountFix
	case c[states.Failed] > 0:
		return ExitFailed
	}
	return ExitOK
}

// console serialises result lines and the progress display, which may
// share a terminal.
type console struct {
	mu       sync.Mutex
	out      io.Writer // results
	prog     io.Writer // progress; nil: none
	bar      bool      // prog is a terminal: redraw in place
	shared   bool      // out and prog are the same terminal
	barShown bool
}

func (c *console) result(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.barShown && c.shared {
		fmt.Fprint(c.prog, "\r\033[K")
		c.barShown = false
	}
	fmt.Fprintln(c.out, line)
}

func (c *console) progress(line string) {
	if c.prog == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar {
		fmt.Fprint(c.prog, "\r\033[K"+line)
		c.barShown = true
		return
	}
	fmt.Fprintln(c.prog, line)
}

// endProgress moves past a bar left on the screen.
func (c *console) endProgress() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.barShown {
		fmt.Fprintln(c.prog)
		c.barShown = false
	}
}

// meter draws progress: a bar redrawn every 100ms on a terminal, a plain
// line every `every` elsewhere, and a last one when stopped.
type meter struct {
	con    *console
	total  func() int
	counts func() map[states.State]int
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
}

func startMeter(con *console, every time.Duration, total func() int, counts func() map[states.State]int) *meter {
	m := &meter{con: con, total: total, counts: counts, start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if con.prog == nil {
		close(m.done)
		return m
	}
	if con.bar {
		every = 100 * time.Millisecond
	}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				con.progress(m.render())
			case <-m.stop:
				return
			}
		}
	}()
	return m
}

// end stops the meter and draws the final state.
func (m *meter) end() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	<-m.done
	if m.con.prog != nil {
		m.con.progress(m.render())
		m.con.endProgress()
	}
}

func (m *meter) render() string {
	c := m.counts()
	total := m.total()
	n := c[states.Done] + c[states.Failed] + c[states.NeedsAccountFix]
	elapsed := time.Since(m.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	eta := "-"
	if n >= total {
		eta = "0s"
	} else if rate > 0 {
		eta = (time.Duration(float64(total-n) / rate * float64(time.Second))).Round(time.Second).String()
	}
	line := fmt.Sprintf("%d/%d settled  done %d  failed %d  needs-fix %d  %.1f/s  elapsed %s  ETA %s",
		n, total, c[states.Done], c[states.Failed], c[states.NeedsAccountFix], rate, elapsed.Round(100*time.Millisecond), eta)
	if m.con.bar {
		const width = 24
		filled := 0
		if total > 0 {
			filled = min(width, n*width/total)
		}
		line = "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] " + line
	}
	return line
}

// outcome is one finished task as run, resume and solve --json print it:
// the contract's shape, a subset of engine.Task's.
type outcome struct {
	ID        string       `json:"id"`
	Ref       string       `json:"ref"`
	State     states.State `json:"state"`
	Token     string       `json:"token"`
	Code      string       `json:"code"`
	Submits   int          `json:"submits"`
	Polls     int          `json:"polls"`
	Resubmits int          `json:"resubmits"`
	Cost      string       `json:"cost"`
}

func outcomeOf(t engine.Task) outcome {
	return outcome{ID: t.ID, Ref: t.Ref, State: t.State, Token: t.Token, Code: t.Code,
		Submits: t.Submits, Polls: t.Polls, Resubmits: t.Resubmits, Cost: t.Cost}
}

// resultJSON is one finished task as run, resume and solve --json print it.
func resultJSON(t engine.Task) string {
	b, _ := json.Marshal(outcomeOf(t))
	return string(b)
}

// resultText is one finished task for a person.
func resultText(t engine.Task) string {
	ref := t.Ref
	if ref == "" {
		ref = "-"
	}
	what := t.Token
	if t.State != states.Done {
		what = t.Code
		if what == "" {
			what = "-"
		}
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s", printable(t.ID), printable(ref), printable(string(t.State)), printable(what))
}

// batch is one run of an engine over a set of tasks until they settle:
// the part shared by solve, run and resume.
type batch struct {
	a      *app
	cmd    *cobra.Command
	store  persist.Store
	eng    *engine.Engine
	tr     *tracker
	con    *console
	ids    map[string]bool // the tasks this command answers for
	quiet  bool            // print no result lines (solve)
	printW sync.WaitGroup
	moves  atomic.Pointer[moves] // solve's display of its task's moves, if any
}

// onTransition is the engine's OnTransition.
func (b *batch) onTransition(tr engine.Transition) {
	b.tr.hook(tr)
	if m := b.moves.Load(); m != nil {
		m.hook(tr)
	}
}

// openBatch opens the store (creating it only if create) and an engine
// over it; every check of the input must be done by then.
func (a *app) openBatch(cmd *cobra.Command, client *provider.Client, pol engine.Policy, quiet, create bool) (*batch, error) {
	fp, err := a.failpoint() // test-only: see failpoint.go
	if err != nil {
		return nil, err
	}
	store, err := a.openStore(create)
	if err != nil {
		return nil, err
	}
	return a.startBatch(cmd, fp, store, client, pol, quiet)
}

// startBatch starts an engine over an open store, which it closes on
// error. The tasks the engine resumes are the command's business.
func (a *app) startBatch(cmd *cobra.Command, fp *failpoint, store persist.Store, client *provider.Client, pol engine.Policy, quiet bool) (*batch, error) {
	b := &batch{a: a, cmd: cmd, store: store, tr: newTracker(), ids: map[string]bool{}, quiet: quiet}
	ctx := cmd.Context()
	// The tasks the engine will resume are this command's business too.
	active, err := store.List(ctx, persist.ListOptions{States: activeStates})
	if err != nil {
		store.Close()
		return nil, usageErr("%s: %v", a.dbPath().value, err)
	}
	for _, t := range active {
		b.ids[t.ID] = true
	}
	b.tr.watched = b.ids
	// The engine's warnings (a failing store above all: nothing new is
	// sent until it records what was paid) go to stderr.
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.Open(ctx, engine.Config{Store: fp.store(store), API: fp.api(client), Policy: pol, Fleet: b.a.sharedDB(),
		OnTransition: b.onTransition, FetchCost: true, Logger: logger})
	if err != nil {
		store.Close()
		return nil, usageErr("%v", err)
	}
	b.eng = eng
	stderr := cmd.ErrOrStderr()
	stdout := cmd.OutOrStdout()
	b.con = &console{out: stdout}
	if a.opts.terminal(stderr) && !quiet {
		b.con.prog, b.con.bar = stderr, true
		b.con.shared = a.opts.terminal(stdout)
	}
	if parked, _ := store.List(ctx, persist.ListOptions{States: []states.State{states.NeedsAccountFix}}); len(parked) > 0 {
		b.checkAccount(ctx, pol, parked)
	}
	return b, nil
}

// checkAccount is the half-open breaker as the CLI meets it. The engine
// probes an open breaker every account_probe_interval, but run and resume
// end as soon as every task is settled or parked, before that probe fires:
// an unattended bot whose account was topped up would wait for a person
// forever. So a command that finds parked tasks asks the account once
// (a free getbalance, through the engine's slots and budget) and, when it
// is usable (a positive balance, no account error), releases them itself,
// as the engine's probe would; they are then this command's to drive and
// report. With probing off ("0s") only a person releases them.
func (b *batch) checkAccount(ctx context.Context, pol engine.Policy, parked []*persist.Task) {
	stderr := b.cmd.ErrOrStderr()
	why := "submits are stopped until `captchafsm account-fixed`"
	if pol.AccountProbeInterval > 0 {
		balance, err := b.eng.Balance(ctx)
		usable := false
		switch {
		case err != nil:
			why = fmt.Sprintf("the account is not usable yet (getbalance: %v); `captchafsm account-fixed` once it is", err)
		default:
			v, perr := strconv.ParseFloat(balance, 64)
			usable = perr == nil && v > 0
			why = fmt.Sprintf("the account is not usable yet (getbalance: %s); `captchafsm account-fixed` once it is", balance)
		}
		if usable {
			n, err := b.eng.AccountFixedBecause(ctx, fmt.Sprintf("getbalance at %s's start: balance %s", b.cmd.Name(), balance))
			if err == nil {
				b.tr.mu.Lock()
				for _, t := range parked {
					b.ids[t.ID] = true
				}
				b.tr.mu.Unlock()
				fmt.Fprintf(stderr, "captchafsm: the account is usable again (getbalance: %s): released %d tasks parked in NeedsAccountFix\n", printable(balance), n)
				return
			}
			why = fmt.Sprintf("the account looks usable (getbalance: %s), but releasing the tasks failed: %v", balance, err)
		}
	}
	fmt.Fprintf(stderr, "captchafsm: warning: %d tasks wait in NeedsAccountFix: %s\n", len(parked), printable(why))
}

// watch adds ids to the tasks the command answers for; those already
// settled are reported at once.
func (b *batch) watch(ctx context.Context, ids []string) error {
	b.tr.mu.Lock()
	for _, id := range ids {
		b.ids[id] = true
	}
	b.tr.mu.Unlock()
	for _, id := range ids {
		t, err := b.store.Get(ctx, id)
		if err != nil {
			return err
		}
		if t.State.Settled() {
			t.Params = nil
			b.tr.add(engine.TaskOf(t))
		}
	}
	return nil
}

// print writes one line per settled task until the tracker is drained and
// stop is closed.
func (b *batch) print(stop <-chan struct{}) {
	b.printW.Add(1)
	go func() {
		defer b.printW.Done()
		for {
			for _, t := range b.tr.take() {
				if b.quiet || !b.ids[t.ID] {
					continue
				}
				if b.a.json {
					b.con.result(resultJSON(t))
				} else {
					b.con.result(resultText(t))
				}
			}
			select {
			case <-b.tr.notify:
			case <-stop:
				for _, t := range b.tr.take() {
					if !b.quiet && b.ids[t.ID] {
						if b.a.json {
							b.con.result(resultJSON(t))
						} else {
							b.con.result(resultText(t))
						}
					}
				}
				return
			}
		}
	}()
}

// drive runs the engine until every watched task settles, then closes
// everything and returns the exit status's error.
func (b *batch) drive(ctx context.Context) error {
	stop := make(chan struct{})
	b.print(stop)
	m := startMeter(b.con, 2*time.Second, func() int {
		b.tr.mu.Lock()
		defer b.tr.mu.Unlock()
		return len(b.ids)
	}, b.tr.counts)
	failure, derr := b.drain(ctx)
	breakerCode := b.eng.BreakerCode()
	cerr := b.eng.Close() // every hook has run once Close returns
	m.end()
	close(stop)
	b.printW.Wait()
	// The store is the truth: report anything the hook did not.
	final := map[states.State]int{}
	unsettled := 0
	if derr == nil {
		for id := range b.ids {
			t, err := b.store.Get(context.WithoutCancel(ctx), id)
			if err != nil {
				continue
			}
			if t.State.Settled() {
				final[t.State]++
			} else {
				unsettled++
			}
		}
	}
	b.store.Close()
	var sf *engine.StoreFailureError
	if errors.As(cerr, &sf) {
		// The stop kept what it could; these it could not.
		fmt.Fprintln(b.cmd.ErrOrStderr(), "captchafsm: "+printable(sf.Error()))
	}
	switch {
	case failure != nil:
		return &exitError{code: ExitStoreFailed, err: fmt.Errorf("the database failed for too long; stopped: %w", failure)}
	case sf != nil && ctx.Err() == nil:
		return &exitError{code: ExitStoreFailed, err: errors.New("stopped with paid answers the database did not record; `captchafsm resume` records them as possibly charged")}
	case derr != nil && ctx.Err() != nil:
		return errInterrupted
	case derr != nil:
		return fmt.Errorf("engine: %w", derr)
	case cerr != nil:
		return fmt.Errorf("engine: close: %w", cerr)
	}
	if unsettled > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("%d tasks did not settle; `captchafsm resume` continues them", unsettled)}
	}
	b.summary(final, breakerCode)
	return exitWith(exitCode(final))
}

// drain waits for every task to settle, unless the engine reports that the
// store has failed to record paid answers for longer than its bound.
func (b *batch) drain(ctx context.Context) (*engine.StoreFailureError, error) {
	done := make(chan error, 1)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- b.eng.Drain(dctx) }()
	select {
	case err := <-done:
		return nil, err
	case f := <-b.eng.StoreFailure():
		cancel()
		<-done
		return f, nil
	}
}

// summary says on stderr how the tasks ended and what to do next;
// breakerCode is the code that stopped the submits, if one did.
func (b *batch) summary(c map[states.State]int, breakerCode string) {
	if b.quiet {
		return
	}
	w := b.cmd.ErrOrStderr()
	n := c[states.Done] + c[states.Failed] + c[states.NeedsAccountFix]
	fmt.Fprintf(w, "captchafsm: %d tasks: %d Done, %d Failed, %d NeedsAccountFix\n",
		n, c[states.Done], c[states.Failed], c[states.NeedsAccountFix])
	if c[states.Failed] > 0 {
		fmt.Fprintln(w, "captchafsm: see `captchafsm list --state Failed` and `captchafsm history ID`")
	}
	if c[states.NeedsAccountFix] > 0 {
		what := "fix the account (top up, whitelist the IP)"
		if e, ok := transitions.Lookup(breakerCode); ok {
			fmt.Fprintf(w, "captchafsm: submits stopped on %s: %s %s\n", e.Code, e.Meaning, e.Fix)
			if e.KeyWide {
				what = "fix the API key (CAPTCHAFSM_API_KEY or --key-file)"
			}
		}
		fmt.Fprintf(w, "captchafsm: %s, then `captchafsm resume`: it releases the parked tasks once a getbalance shows the account usable (`captchafsm account-fixed` first releases them regardless)\n", what)
	}
}

// interrupted maps any failure after SIGINT/SIGTERM to exit 130: whatever
// step the signal cut short, the tasks recorded so far stay in the database.
func interrupted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// isCtxErr reports whether err is the context's end.
func isCtxErr(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, engine.ErrClosed))
}
