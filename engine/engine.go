package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// API is what the engine needs of the provider: one call is one request, no
// hidden retries. *provider.Client satisfies it.
type API interface {
	// Submit sends in.php and returns the provider's task id.
	Submit(ctx context.Context, req provider.Request) (string, error)
	// Poll asks res.php for the answers of ids, in order.
	Poll(ctx context.Context, ids []string) ([]provider.Answer, error)
}

var _ API = (*provider.Client)(nil)

// CostAPI is implemented by APIs that can tell a solved task's price
// (res.php?action=get2). *provider.Client does.
type CostAPI interface {
	Cost(ctx context.Context, id string) (token, cost string, err error)
}

var _ CostAPI = (*provider.Client)(nil)

// Config configures an Engine. Store and API are required; every other
// field's zero value means its default.
type Config struct {
	// Store keeps tasks and histories. The engine never closes it.
	Store persist.Store
	// API talks to the provider (or the simulator).
	API API
	// Policy holds timing and limits; zero fields keep their defaults.
	Policy Policy
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// OnTransition, if set, is called after each committed transition (and
	// each report recorded), once the move is on disk, from the goroutine
	// that committed it: a worker, or one of the goroutines a batched poll
	// commits its answers from in parallel, or the caller of Cancel,
	// AccountFixed or Report. It is therefore called concurrently and must
	// be safe for concurrent use. One task's moves reach it in order (the
	// next waits for the hook to return); moves of different tasks in any
	// order, Transition.Task.Seq ordering the views of one task. It holds
	// up the goroutine that called it, and with it the task: it must
	// return quickly (hand slow work to a goroutine of its own). Subscribe
	// is the buffered alternative.
	OnTransition func(Transition)
	// PollBatch caps the ids of one batched poll (default 100).
	PollBatch int
	// BatchWindow is how long a task due to be polled waits for others to
	// fall due and join its batch (default PollInterval/5, at most 1s). No
	// task is polled before its due time.
	BatchWindow time.Duration
	// Fleet makes the engine one of several sharing its store (bots on
	// many hosts): it drives only the tasks it holds a lease on, takes
	// over those of an engine that died once its lease expires, and
	// shares the account's breaker, bans and submit rate with the others
	// when the store also implements persist.Fleet. The store must
	// implement persist.Leaser (persist/pgstore does; a boltstore file
	// admits one process and does not). Off (the default), the engine
	// owns every task of its store: no other engine may drive it.
	Fleet bool
	// Owner names this engine in leases (Fleet); default host/pid/random.
	Owner string
	// LeaseTTL is how long a lease lasts without renewal (default 30s): an
	// engine that dies is replaced that long after its last renewal.
	LeaseTTL time.Duration
	// PageWindow is how far ahead a lone engine loads due tasks from the
	// store into memory (default 1m); MaxHeld bounds the tasks it holds
	// (default 10,000, or 20 × Policy.Concurrency when more). Tasks due
	// later, or beyond the bound, wait on disk and are paged in as they
	// fall due or room is made. (The store's due index may hold a task up
	// to persist.DueSlack before its NextAt, so a task due that much
	// beyond the window may be loaded with it; none is loaded late.)
	PageWindow time.Duration
	MaxHeld    int
	// FetchCost records each solved task's price in the task, when API
	// implements CostAPI. Batched polls carry no price: the engine learns
	// each method's price from one res.php?action=get2 and reuses it,
	// asking again every 250 solves of the method or 15 minutes, inside
	// the res.php budget. Off by default.
	FetchCost bool
}

// Engine drives persisted solves. Open one per store; it is safe for
// concurrent use.
//
// It is a thin façade over services that each own their state: the
// registry (the tasks in memory, their waiters and subscribers), the
// scheduler (queues and due times), the limiter (pacing, the provider's
// windows and budget, bans), the breaker, the workers (requests and
// answers) and, in a fleet, the leases. Every change of a task goes through
// one gate (commit, in gate.go).
type Engine struct {
	store  persist.Store
	api    API
	pol    Policy
	limits transitions.Limits // pol's figures, as decisions read them
	log    *slog.Logger
	coster CostAPI       // nil unless Config.FetchCost
	prices prices        // each method's learnt price (Config.FetchCost)
	fleet  *leasing      // nil: this engine owns every task of the store
	pager  *pager        // a lone engine's; nil in a fleet
	slots  chan struct{} // one per HTTP request in flight: Policy.Concurrency

	reg   *registry
	sched *scheduler
	lim   *limiter
	brk   *breaker
	unrec *unrecorded // the store breaker

	ctx    context.Context // cancelled to abort requests at shutdown
	cancel context.CancelFunc
	jobs   chan job
	done   chan struct{} // closed when shutdown begins
	once   sync.Once
	wg     sync.WaitGroup

	stats struct {
		transitions, submits, polls, answers, retries, resubmits, bans, trips, charged, storeErr, probes atomic.Int64
	}
}

// Open starts an engine on cfg.Store: it loads every non-terminal task and
// continues it where it was, honouring its persisted next-action time.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("engine: config: Store is required")
	}
	if cfg.API == nil {
		return nil, errors.New("engine: config: API is required")
	}
	pol := cfg.Policy.WithDefaults()
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		// Disabled at every level: a handler that formats into
		// io.Discard would still build every record (two transitions per
		// solve log at Info).
		log = slog.New(slog.DiscardHandler)
	}
	batchN := cfg.PollBatch
	if batchN <= 0 {
		batchN = 100
	}
	window := cfg.BatchWindow
	if window <= 0 {
		window = min(pol.PollInterval/5, time.Second)
	}
	e := &Engine{store: cfg.Store, api: cfg.API, pol: pol, limits: pol.Limits(), log: log,
		brk: &breaker{}, jobs: make(chan job), done: make(chan struct{}), slots: make(chan struct{}, pol.Concurrency)}
	if c, ok := cfg.API.(CostAPI); ok && cfg.FetchCost {
		e.coster = c
	}
	l, shared := cfg.Store.(persist.Leaser)
	switch {
	case cfg.Fleet && !shared:
		return nil, fmt.Errorf("engine: config: Fleet: the store (%T) cannot be shared by engines: it does not implement persist.Leaser", cfg.Store)
	case !cfg.Fleet && shared:
		log.Warn("the store can be shared by engines but Fleet is off: this engine drives every task of it; run no other engine on it")
	}
	if cfg.Fleet {
		e.fleet = &leasing{leaser: l, owner: cfg.Owner, ttl: cfg.LeaseTTL}
		e.fleet.shared, _ = cfg.Store.(persist.Fleet)
		if e.fleet.owner == "" {
			e.fleet.owner = defaultOwner()
		}
		if e.fleet.ttl <= 0 {
			e.fleet.ttl = defaultLeaseTTL
		}
		e.fleet.every = min(time.Second, e.fleet.ttl/3)
	}
	e.reg = newRegistry(cfg.OnTransition, e.fleet == nil)
	e.unrec = newUnrecorded(pol.StoreFailureLimit)
	e.lim = newLimiter(pol.SubmitRate, e.fleet == nil || e.fleet.shared == nil)
	e.sched = newScheduler(e.lim, e.brk, e.fleet == nil, batchN, window, pol.Concurrency)
	e.sched.maxInFlight, e.sched.polling, e.sched.storeBroken = pol.MaxInFlight, e.reg.polling, e.unrec.open
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if e.fleet != nil {
		e.wg.Add(1)
		go e.fleetLoop()
	} else {
		e.pager = &pager{window: cfg.PageWindow, maxHeld: cfg.MaxHeld, wake: make(chan struct{}, 1)}
		if e.pager.window <= 0 {
			e.pager.window = defaultPageWindow
		}
		if e.pager.maxHeld <= 0 {
			e.pager.maxHeld = max(defaultMaxHeld, 20*pol.Concurrency)
		}
		next, full, err := e.resume(ctx)
		if err != nil {
			e.cancel()
			return nil, err
		}
		e.wg.Add(1)
		go e.pagerLoop(next, full)
	}
	for range pol.Concurrency {
		e.wg.Add(1)
		go e.worker()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.sched.run(e.jobs, e.done)
	}()
	if b, ok := cfg.API.(BalanceAPI); ok && pol.AccountProbeInterval > 0 {
		e.wg.Add(1)
		go e.probeLoop(b)
	}
	return e, nil
}

// resume continues the store's tasks where they were: it holds the first
// submit until the provider's window after the last recorded one has
// passed, takes the parked tasks (the breaker stays open: the account was
// not fixed when the engine stopped), and pages in the tasks due soonest.
// It returns when the pager is to look again.
func (e *Engine) resume(ctx context.Context) (next time.Time, full bool, err error) {
	// A process that stopped a moment ago may have sent in.php requests
	// that the provider still counts in its 3-second window.
	last, err := e.store.LastSubmit(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("engine: resume: %w", err)
	}
	if hold := last.Add(submitWindowLen); time.Until(hold) > 0 {
		e.lim.holdSubmits(hold)
	}
	parked, err := e.loadParked(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("engine: resume: %w", err)
	}
	if next, full, err = e.page(ctx); err != nil {
		return time.Time{}, false, fmt.Errorf("engine: resume: %w", err)
	}
	if held := e.reg.len(); held > 0 {
		e.log.Info("resumed tasks", "held", held, "parked", parked, "breaker_open", e.BreakerOpen())
	}
	return next, full, nil
}

// BreakerOpen reports whether submits are stopped by an account error.
func (e *Engine) BreakerOpen() bool { return e.brk.isOpen() }

// BreakerCode is the code that opened the breaker (an account error, or a
// key the provider refuses), "" while it is closed: transitions.Lookup
// says what fixes it.
func (e *Engine) BreakerCode() string {
	if !e.brk.isOpen() {
		return ""
	}
	return e.brk.openedBy()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		Transitions: s.transitions.Load(), SubmitRequests: s.submits.Load(), PollRequests: s.polls.Load(),
		PolledAnswers: s.answers.Load(), Retries: s.retries.Load(), Resubmits: s.resubmits.Load(),
		BansWaited: s.bans.Load(), BreakerTrips: s.trips.Load(), PossiblyCharged: s.charged.Load(),
		StoreErrors: s.storeErr.Load(), AccountProbes: s.probes.Load(), Unrecorded: int64(e.unrec.count()),
		Held: int64(e.reg.len()),
	}
}

// Close stops the engine gracefully: no new request starts, requests in
// flight complete and their answers are committed, and every unfinished
// task stays in the store to be resumed. Close does not close the store.
func (e *Engine) Close() error { return e.Shutdown(context.Background()) }

// Shutdown is Close with a deadline: when ctx is done before the requests in
// flight complete, they are aborted (a submit aborted that way is recorded
// as possibly charged when the task resumes). In.php answers the store has
// not recorded are tried once more; those it still cannot record are
// named in a *StoreFailureError (errors.Is ErrUnrecorded): their tasks are
// recorded as possibly charged when they resume.
func (e *Engine) Shutdown(ctx context.Context) error {
	first := false
	e.once.Do(func() {
		first = true
		close(e.done)
	})
	if !first {
		return nil
	}
	finished := make(chan struct{})
	go func() { e.wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		e.cancel()
		<-finished
		err = ctx.Err()
	}
	e.cancel()
	e.recordHeld()
	e.releaseLeases()
	e.reg.wakeAll()
	if r := e.unrec.report(); r != nil {
		e.log.Error("stopped with in.php answers not recorded: their tasks will be recorded as possibly charged", "err", r)
		return errors.Join(err, r)
	}
	return err
}

// recordHeld tries once more to commit the in.php answers held in memory,
// at shutdown, when no worker owns a task any more.
func (e *Engine) recordHeld() {
	for _, tk := range e.reg.all() {
		if tk.pending == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.pol.RequestTimeout)
		if e.commit(ctx, tk, *tk.pending) == nil {
			tk.pending = nil
			e.unrec.drop(tk.cur().ID)
		}
		cancel()
	}
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
