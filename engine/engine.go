package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
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
	// OnTransition, if set, is called after each committed transition, from
	// the goroutine that committed it. It must return quickly.
	OnTransition func(Transition)
	// PollBatch caps the ids of one batched poll (default 100).
	PollBatch int
	// BatchWindow is how far ahead of its due time a task may be polled so
	// that it joins a batch (default PollInterval/5, at most 1s).
	BatchWindow time.Duration
	// Owner names this engine in leases when the store is shared
	// (persist.Leaser); default host/pid/random.
	Owner string
	// LeaseTTL is how long a lease lasts without renewal (default 30s): an
	// engine that dies is replaced that long after its last renewal.
	LeaseTTL time.Duration
	// FetchCost asks the provider for each solved task's price (one get2
	// request per solve, when API implements CostAPI) and records it in the
	// task. Batched polls do not carry prices, so it is off by default.
	FetchCost bool
}

// Transition is one committed move, as the hook and subscribers see it.
type Transition struct {
	Task   *persist.Task // the task after the move (without Params)
	Record persist.Record
}

// Request is one solve to submit.
type Request struct {
	// Method is the provider's method (post, base64, userrecaptcha, ...).
	Method string `json:"method"`
	// Params are the method's parameters (never the API key).
	Params map[string]string `json:"params,omitempty"`
	// Ref is an optional name of the caller's; unique in the store.
	Ref string `json:"ref,omitempty"`
}

// Result is a task's outcome.
type Result struct {
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

// ResultOf returns t's outcome.
func ResultOf(t *persist.Task) *Result {
	return &Result{ID: t.ID, Ref: t.Ref, State: t.State, Token: t.Token, Code: t.Code,
		Submits: t.Submits, Polls: t.Polls, Resubmits: t.Resubmits, Cost: t.Cost}
}

// TaskError is returned by Wait and Solve for a task that ended without an
// answer. errors.Is matches ErrFailed or ErrNeedsAccountFix by its state.
type TaskError struct {
	ID    string
	State states.State
	Code  string
	Class transitions.Class
}

func (e *TaskError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("engine: task %s ended %s", e.ID, e.State)
	}
	return fmt.Sprintf("engine: task %s ended %s: %s (%s)", e.ID, e.State, e.Code, e.Class)
}

// Is matches ErrFailed and ErrNeedsAccountFix.
func (e *TaskError) Is(target error) bool {
	switch target {
	case ErrFailed:
		return e.State == states.Failed
	case ErrNeedsAccountFix:
		return e.State == states.NeedsAccountFix
	}
	return false
}

// Sentinel errors.
var (
	// ErrFailed matches a TaskError of a Failed task.
	ErrFailed = errors.New("engine: task failed")
	// ErrNeedsAccountFix matches a TaskError of a task parked until a person
	// fixes the account.
	ErrNeedsAccountFix = errors.New("engine: task needs an account fix")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("engine: closed")
	// ErrNotCancellable: the task is terminal or parked in NeedsAccountFix.
	ErrNotCancellable = errors.New("engine: task cannot be cancelled in its state")
)

// Stats are the engine's counters since Open.
type Stats struct {
	Transitions     int64 // committed transitions
	SubmitRequests  int64 // in.php requests sent
	PollRequests    int64 // res.php requests sent
	PolledAnswers   int64 // answers received for tasks (a batch gives many)
	Retries         int64 // transient errors that led to a backoff
	Resubmits       int64 // new provider tasks after a resubmit code
	BansWaited      int64 // ban codes answered (the engine waited each out)
	BreakerTrips    int64 // account errors that opened the breaker
	PossiblyCharged int64 // submits recorded as possibly charged
	StoreErrors     int64 // transitions the store refused or failed to commit
}

// Engine drives persisted solves. Open one per store; it is safe for
// concurrent use.
type Engine struct {
	store  persist.Store
	api    API
	pol    Policy
	limits transitions.Limits // pol's figures, as decisions read them
	log    *slog.Logger
	hook   func(Transition)
	coster CostAPI // nil unless Config.FetchCost

	// Fleet mode (the store is shared by several engines).
	leaser     persist.Leaser // nil: this engine owns every task
	fleet      persist.Fleet  // nil: breaker, bans and rate are local
	owner      string
	leaseTTL   time.Duration
	fleetEvery time.Duration
	batchN     int
	window     time.Duration

	ctx    context.Context // cancelled to abort requests at shutdown
	cancel context.CancelFunc
	jobs   chan job
	wake   chan struct{}
	done   chan struct{} // closed when shutdown begins
	wg     sync.WaitGroup

	limiter *rate.Limiter
	window3 submitWindow

	mu          sync.Mutex
	tasks       map[string]*task
	submitQ     taskHeap // Submitting, Backoff, Resubmitting: by next-action time
	pollQ       taskHeap // Polling: by next poll time
	waiters     map[string][]chan struct{}
	breaker     bool
	breakerCode string // the code that opened it
	// fleetSawOpen: the fleet's breaker was seen open since this engine's
	// breaker opened, so a closed fleet breaker means a person fixed it.
	fleetSawOpen bool
	pauseSubmit  time.Time
	pausePoll    time.Time
	active       int           // tasks the engine still drives (not terminal, not parked)
	idle         chan struct{} // closed while active == 0
	subs         map[int]chan Transition
	nextSub      int
	closed       bool
	budget       pollBudget

	stats struct {
		transitions, submits, polls, answers, retries, resubmits, bans, trips, charged, storeErr atomic.Int64
	}
}

// task is the engine's in-memory view of one non-terminal task.
type task struct {
	t      *persist.Task
	idx    int       // index in q, -1 when not queued
	q      *taskHeap // the queue holding the task, nil when not queued
	busy   bool
	intent bool // the last committed record is SubmitSending
	cancel bool
	lost   bool      // another engine took the lease over
	slot   time.Time // the fleet's in.php slot booked for the task

	// pending is the decision an in.php answer called for whose commit
	// failed: the next try commits it instead of sending again.
	pending *transitions.Decision
	// hold is when a step that could not be committed is tried again; the
	// breaker's parking honours it too.
	hold time.Time
}

type jobKind int

const (
	jobSubmit jobKind = iota
	jobPoll
)

type job struct {
	kind  jobKind
	tasks []*task
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
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	batchN := cfg.PollBatch
	if batchN <= 0 {
		batchN = 100
	}
	window := cfg.BatchWindow
	if window <= 0 {
		window = min(pol.PollInterval/5, time.Second)
	}
	ectx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		store: cfg.Store, api: cfg.API, pol: pol, limits: pol.Limits(), log: log, hook: cfg.OnTransition,
		batchN: batchN, window: window,
		ctx: ectx, cancel: cancel,
		jobs:    make(chan job),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(pol.SubmitRate), 1),
		tasks:   map[string]*task{},
		waiters: map[string][]chan struct{}{},
		subs:    map[int]chan Transition{},
		idle:    make(chan struct{}),
	}
	close(e.idle)
	if c, ok := cfg.API.(CostAPI); ok && cfg.FetchCost {
		e.coster = c
	}
	if l, ok := cfg.Store.(persist.Leaser); ok {
		e.leaser = l
		e.fleet, _ = cfg.Store.(persist.Fleet)
		e.owner = cfg.Owner
		if e.owner == "" {
			e.owner = defaultOwner()
		}
		e.leaseTTL = cfg.LeaseTTL
		if e.leaseTTL <= 0 {
			e.leaseTTL = defaultLeaseTTL
		}
		e.fleetEvery = min(time.Second, e.leaseTTL/3)
		e.wg.Add(1)
		go e.fleetLoop()
	} else if err := e.resume(ctx); err != nil {
		cancel()
		return nil, err
	}
	for range pol.Concurrency {
		e.wg.Add(1)
		go e.worker()
	}
	e.wg.Add(1)
	go e.schedule()
	return e, nil
}

// resume loads the non-terminal tasks of the store and continues them.
// Parked tasks stay parked, with the breaker open: the account was not
// fixed when the engine stopped.
func (e *Engine) resume(ctx context.Context) error {
	list, err := e.store.List(ctx, persist.ListOptions{States: append(states.ActiveStates(), states.NeedsAccountFix)})
	if err != nil {
		return fmt.Errorf("engine: resume: %w", err)
	}
	var drive []*persist.Task
	e.mu.Lock()
	// A process that stopped a moment ago may have sent in.php requests
	// that the provider still counts in its 3-second window: hold submits
	// until that window has passed.
	for _, t := range list {
		if until := t.Updated.Add(submitWindowLen); until.After(e.pauseSubmit) && time.Until(until) > 0 {
			e.pauseSubmit = until
		}
	}
	for _, t := range list {
		if t.State == states.NeedsAccountFix {
			e.tasks[t.ID] = &task{t: t, idx: -1}
			e.breaker = true
			continue
		}
		drive = append(drive, t)
	}
	e.mu.Unlock()
	if err := e.adopt(ctx, drive); err != nil {
		return fmt.Errorf("engine: resume: %w", err)
	}
	if len(list) > 0 {
		e.log.Info("resumed tasks", "count", len(list), "breaker_open", e.BreakerOpen())
	}
	return nil
}

// Submit validates req, stores it as a new task (durable when Submit
// returns) and schedules it. It returns the task id. Bad input is refused
// before anything is stored or sent.
func (e *Engine) Submit(ctx context.Context, req Request) (string, error) {
	ids, _, err := e.SubmitMany(ctx, []Request{req})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// SubmitMany validates every request, then stores the new ones in one
// transaction and schedules them. A request whose Ref is already in the
// store adds no task: its existing id is returned. It returns the ids in
// request order and how many tasks were added.
func (e *Engine) SubmitMany(ctx context.Context, reqs []Request) (ids []string, added int, err error) {
	for i, r := range reqs {
		if err := provider.Validate(provider.Request{Method: r.Method, Params: r.Params}); err != nil {
			if len(reqs) > 1 {
				return nil, 0, fmt.Errorf("engine: request %d: %w", i+1, err)
			}
			return nil, 0, err
		}
	}
	if e.isClosed() {
		return nil, 0, ErrClosed
	}
	now := time.Now()
	ids = make([]string, len(reqs))
	var fresh []*persist.Task
	seenRef := map[string]string{}
	for i, r := range reqs {
		if r.Ref != "" {
			if id, ok := seenRef[r.Ref]; ok {
				ids[i] = id
				continue
			}
			old, err := e.store.GetByRef(ctx, r.Ref)
			if err == nil {
				ids[i] = old.ID
				seenRef[r.Ref] = old.ID
				continue
			}
			if !errors.Is(err, persist.ErrNotFound) {
				return nil, 0, fmt.Errorf("engine: submit: %w", err)
			}
		}
		id := persist.NewID()
		params := make(map[string]string, len(r.Params))
		for k, v := range r.Params {
			params[k] = v
		}
		t := &persist.Task{ID: id, Ref: r.Ref, Method: r.Method, Params: params,
			State: transitions.Initial, Created: now, Updated: now, NextAt: now}
		if e.leaser != nil {
			t.Owner, t.LeaseUntil = e.owner, now.Add(e.leaseTTL)
		}
		fresh = append(fresh, t)
		ids[i] = t.ID
		if r.Ref != "" {
			seenRef[r.Ref] = t.ID
		}
	}
	if len(fresh) == 0 {
		return ids, 0, nil
	}
	if err := e.store.Create(ctx, fresh...); err != nil {
		return nil, 0, fmt.Errorf("engine: submit: %w", err)
	}
	e.mu.Lock()
	for _, t := range fresh {
		t.Params = nil // loaded again at submit time: memory stays small
		tk := &task{t: t, idx: -1}
		e.tasks[t.ID] = tk
		e.addActiveLocked(1)
		if e.breaker {
			// Parked at once by the scheduler, without sending.
			t.NextAt = time.Time{}
		}
		e.pushLocked(tk)
	}
	e.mu.Unlock()
	e.kick()
	return ids, len(fresh), nil
}

// Wait blocks until the task is terminal or parked in NeedsAccountFix, or
// ctx is done. A Done task gives its Result; any other end gives the Result
// and a *TaskError.
func (e *Engine) Wait(ctx context.Context, id string) (*Result, error) {
	for {
		e.mu.Lock()
		tk, inMem := e.tasks[id]
		var ch chan struct{}
		if inMem && !tk.t.State.Settled() {
			ch = make(chan struct{})
			e.waiters[id] = append(e.waiters[id], ch)
		}
		var snap *persist.Task
		if inMem {
			snap = tk.t.Clone()
		}
		e.mu.Unlock()
		if ch == nil {
			if snap == nil {
				t, err := e.store.Get(ctx, id)
				if err != nil {
					return nil, fmt.Errorf("engine: wait %s: %w", id, err)
				}
				snap = t
				if !t.State.Settled() {
					if e.leaser == nil {
						return ResultOf(t), fmt.Errorf("engine: wait %s: task is %s and not driven by this engine", id, t.State)
					}
					// Another engine of the fleet drives it: watch the store.
					select {
					case <-time.After(e.fleetEvery):
						continue
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-e.done:
						return nil, ErrClosed
					}
				}
			}
			return resultOf(snap)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.done:
			return nil, ErrClosed
		}
	}
}

// resultOf is a settled task's Result, with a *TaskError unless it is Done.
func resultOf(t *persist.Task) (*Result, error) {
	r := ResultOf(t)
	if t.State == states.Done {
		return r, nil
	}
	var class transitions.Class
	if t.Code != "" {
		class = transitions.Classify(t.Code)
	}
	return r, &TaskError{ID: t.ID, State: t.State, Code: t.Code, Class: class}
}

// Solve submits req and waits for its outcome. Cancelling ctx cancels the
// task: it ends Failed with code CANCELLED.
func (e *Engine) Solve(ctx context.Context, req Request) (*Result, error) {
	id, err := e.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := e.Wait(ctx, id)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		cctx, cancel := context.WithTimeout(context.Background(), e.pol.RequestTimeout)
		defer cancel()
		if cerr := e.Cancel(cctx, id); cerr != nil && !errors.Is(cerr, ErrNotCancellable) {
			return nil, errors.Join(err, cerr)
		}
		if r, werr := e.Wait(cctx, id); r != nil {
			return r, errors.Join(err, werr)
		}
	}
	return res, err
}

// Cancel ends the task in Failed with code CANCELLED. A request in flight
// for it completes first; its answer is recorded, then the task is
// cancelled if it is not terminal by then.
func (e *Engine) Cancel(ctx context.Context, id string) error {
	e.mu.Lock()
	tk, ok := e.tasks[id]
	if !ok || tk.t.State.Settled() {
		e.mu.Unlock()
		if !ok {
			if _, err := e.store.Get(ctx, id); err != nil {
				return fmt.Errorf("engine: cancel %s: %w", id, err)
			}
		}
		return fmt.Errorf("engine: cancel %s: %w", id, ErrNotCancellable)
	}
	if tk.busy {
		tk.cancel = true
		e.mu.Unlock()
		return nil
	}
	e.removeLocked(tk)
	tk.busy = true
	e.mu.Unlock()
	err := e.cancelOwned(ctx, tk)
	e.release(tk)
	return err
}

// AccountFixed closes the breaker and moves every NeedsAccountFix task back
// to Submitting. It returns how many tasks it released.
func (e *Engine) AccountFixed(ctx context.Context) (int, error) {
	e.mu.Lock()
	e.breaker, e.fleetSawOpen = false, false
	var parked []*task
	for _, tk := range e.tasks {
		if tk.t.State == states.NeedsAccountFix && !tk.busy {
			tk.busy = true
			parked = append(parked, tk)
		}
	}
	e.mu.Unlock()
	n := 0
	var errs []error
	for _, tk := range parked {
		if err := e.decideAndCommit(ctx, tk, transitions.Input{What: transitions.Fixed}); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
		e.release(tk)
	}
	if e.leaser != nil {
		// Parked tasks of a shared store belong to no engine: release them
		// in the store (this closes the fleet's breaker too); any engine
		// claims them next.
		m, err := ReleaseAccountFix(ctx, e.store)
		n += m
		errs = append(errs, err)
	}
	e.log.Info("account fixed", "released", n)
	return n, errors.Join(errs...)
}

// ReleaseAccountFix moves every NeedsAccountFix task of store back to
// Submitting without an engine running (the CLI's account-fixed). The next
// engine opened on the store drives them.
func ReleaseAccountFix(ctx context.Context, store persist.Store) (int, error) {
	if f, ok := store.(persist.Fleet); ok {
		if err := f.SetBreaker(ctx, false, ""); err != nil {
			return 0, fmt.Errorf("engine: account fixed: close the fleet's breaker: %w", err)
		}
	}
	list, err := store.List(ctx, persist.ListOptions{States: []states.State{states.NeedsAccountFix}})
	if err != nil {
		return 0, fmt.Errorf("engine: account fixed: %w", err)
	}
	n := 0
	for _, t := range list {
		d, err := transitions.Decide(transitions.Input{State: t.State, What: transitions.Fixed, Now: time.Now()})
		if err != nil {
			return n, err
		}
		next, rec, err := fsm.Apply(t, d)
		if err != nil {
			return n, err
		}
		if err := store.Apply(ctx, next, rec); err != nil {
			return n, fmt.Errorf("engine: account fixed: task %s: %w", t.ID, err)
		}
		n++
	}
	return n, nil
}

// Get returns the stored task.
func (e *Engine) Get(ctx context.Context, id string) (*persist.Task, error) {
	return e.store.Get(ctx, id)
}

// List returns stored tasks.
func (e *Engine) List(ctx context.Context, opts persist.ListOptions) ([]*persist.Task, error) {
	return e.store.List(ctx, opts)
}

// History returns a task's transitions.
func (e *Engine) History(ctx context.Context, id string) ([]persist.Record, error) {
	return e.store.History(ctx, id)
}

// BreakerOpen reports whether submits are stopped by an account error.
func (e *Engine) BreakerOpen() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.breaker
}

// Subscribe returns a channel that receives every committed transition, and
// a function that ends the subscription. A subscriber that falls more than
// buf transitions behind misses transitions rather than stall the engine.
func (e *Engine) Subscribe(buf int) (<-chan Transition, func()) {
	ch := make(chan Transition, max(buf, 1))
	e.mu.Lock()
	id := e.nextSub
	e.nextSub++
	e.subs[id] = ch
	e.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs, id)
			e.mu.Unlock()
			close(ch)
		})
	}
}

// Drain blocks until no task is left for the engine to drive: every task it
// knows is terminal or parked in NeedsAccountFix.
func (e *Engine) Drain(ctx context.Context) error {
	if e.leaser != nil {
		return e.drainFleet(ctx)
	}
	for {
		e.mu.Lock()
		idle := e.idle
		e.mu.Unlock()
		select {
		case <-idle:
			e.mu.Lock()
			still := e.active == 0
			e.mu.Unlock()
			if still {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return ErrClosed
		}
	}
}

// drainFleet waits until no task of the shared store is left to drive, by
// this engine or any other (a dead engine's tasks are taken over).
func (e *Engine) drainFleet(ctx context.Context) error {
	tick := time.NewTicker(e.fleetEvery)
	defer tick.Stop()
	for {
		e.mu.Lock()
		mine := e.active
		e.mu.Unlock()
		if mine == 0 {
			n, err := e.storeActive(ctx)
			if err != nil {
				return fmt.Errorf("engine: drain: %w", err)
			}
			if n == 0 {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.done:
			return ErrClosed
		}
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		Transitions: s.transitions.Load(), SubmitRequests: s.submits.Load(), PollRequests: s.polls.Load(),
		PolledAnswers: s.answers.Load(), Retries: s.retries.Load(), Resubmits: s.resubmits.Load(),
		BansWaited: s.bans.Load(), BreakerTrips: s.trips.Load(), PossiblyCharged: s.charged.Load(),
		StoreErrors: s.storeErr.Load(),
	}
}

// Close stops the engine gracefully: no new request starts, requests in
// flight complete and their answers are committed, and every unfinished
// task stays in the store to be resumed. Close does not close the store.
func (e *Engine) Close() error { return e.Shutdown(context.Background()) }

// Shutdown is Close with a deadline: when ctx is done before the requests in
// flight complete, they are aborted (a submit aborted that way is recorded
// as possibly charged when the task resumes).
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	e.mu.Unlock()
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
	e.releaseLeases()
	e.mu.Lock()
	for id, ws := range e.waiters {
		for _, ch := range ws {
			close(ch)
		}
		delete(e.waiters, id)
	}
	e.mu.Unlock()
	return err
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) addActiveLocked(n int) {
	was := e.active
	e.active += n
	if was == 0 && e.active > 0 {
		e.idle = make(chan struct{})
	} else if was > 0 && e.active == 0 {
		close(e.idle)
	}
}

// taskHeap orders tasks by next-action time.
type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	return h[i].t.NextAt.Before(h[j].t.NextAt)
}
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *taskHeap) Push(x any) {
	tk := x.(*task)
	tk.idx = len(*h)
	*h = append(*h, tk)
}
func (h *taskHeap) Pop() any {
	old := *h
	n := len(old)
	tk := old[n-1]
	old[n-1] = nil
	tk.idx = -1
	*h = old[:n-1]
	return tk
}

// pushLocked queues tk by its state and next-action time. Settled tasks
// are not queued.
func (e *Engine) pushLocked(tk *task) {
	e.removeLocked(tk)
	var q *taskHeap
	switch tk.t.State {
	case states.Polling:
		q = &e.pollQ
	case states.Submitting, states.Backoff, states.Resubmitting:
		q = &e.submitQ
	default:
		return
	}
	tk.q = q
	heap.Push(q, tk)
}

func (e *Engine) removeLocked(tk *task) {
	if tk.q != nil && tk.idx >= 0 {
		heap.Remove(tk.q, tk.idx)
	}
	tk.q = nil
	tk.idx = -1
}
