package captchafsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// The environment Open reads, as the captchafsm command does.
const (
	// EnvAPIKey holds the provider's API key when Options.APIKey is empty.
	EnvAPIKey = "CAPTCHAFSM_API_KEY"
	// EnvAPIURL holds the provider's base URL when Options.BaseURL is
	// empty (a `captchafsm simulate` on loopback, 2captcha's endpoint);
	// unset, the CaptchaAI endpoint (provider.DefaultBaseURL).
	EnvAPIURL = "CAPTCHAFSM_API_URL"
)

// simulatorKey is the key Open gives the in-process simulator when no key
// is given: any well-formed key reaches it, and the environment's key
// (the real account's) has no business there.
const simulatorKey = "0123456789abcdef0123456789abcdef"

// Options configures Open. The zero value means the defaults: the
// CaptchaAI endpoint (or EnvAPIURL's) with the key of EnvAPIKey, the
// engine's default policy, a bbolt file that syncs every commit.
type Options struct {
	// APIKey is the provider's key, 32 hex characters; empty means the
	// EnvAPIKey environment variable (with Simulator, a key of Open's
	// own). It is checked before anything is sent, never stored, logged
	// or put in an error.
	APIKey string
	// BaseURL is the provider's root, under which in.php and res.php
	// live; empty means EnvAPIURL, else provider.DefaultBaseURL.
	BaseURL string
	// Simulator, when set, puts the project's simulator, configured by
	// it, in place of the provider: in process, with no key and no
	// network (its Speed runs its clock faster, and the engine's default
	// waits as much: engine.Policy.Faster). A simulator in process ends
	// with it: to survive a crash, a bot needs the provider, or a
	// `captchafsm simulate` of its own, reached through BaseURL.
	Simulator *providersim.Config
	// Engine holds the engine's other settings (Policy, Logger,
	// OnTransition, FetchCost, ...); its Store and API must be nil: Open
	// makes them. A bot that brings its own store (persist/pgstore for a
	// fleet) opens an engine.Engine itself.
	Engine engine.Config
	// Store holds the bbolt file's options; nil means the defaults.
	Store *boltstore.Options
}

// Solver is an engine on its own bbolt file: what Open returns. It has
// every method of *engine.Engine (Submit, Enqueue, SubmitMany, Wait,
// Solve, Cancel, Get, List, History, Subscribe, Drain, AccountFixed,
// Balance, Report, Stats, ...); Close shuts the engine down and closes the
// file. It is safe for concurrent use.
type Solver struct {
	*engine.Engine
	store *boltstore.Store
	sim   *providersim.Sim

	once     sync.Once
	closeErr error
}

// Open opens (or creates, 0600) the bbolt file at path, resumes every
// unfinished task of it where it was, and returns a Solver ready to take
// requests: the one call a bot needs. The provider is the CaptchaAI
// endpoint (or Options.BaseURL, or EnvAPIURL) with the key of
// Options.APIKey or EnvAPIKey, or the simulator with Options.Simulator.
// Bad options are refused, naming the field, before anything is opened.
func Open(ctx context.Context, path string, opts Options) (*Solver, error) {
	if opts.Engine.Store != nil || opts.Engine.API != nil {
		return nil, errors.New("captchafsm: open: Options.Engine.Store and API must be nil: Open makes them (open an engine.Engine to bring your own)")
	}
	cfg := opts.Engine
	var sim *providersim.Sim
	pc := provider.Config{BaseURL: opts.BaseURL, Key: opts.APIKey}
	if opts.Simulator != nil {
		if err := opts.Simulator.Validate(); err != nil {
			return nil, fmt.Errorf("captchafsm: open: Options.Simulator: %w", err)
		}
		sim = providersim.New(*opts.Simulator)
		pc.BaseURL, pc.HTTPClient = providersim.InProcessURL, sim.Client()
		if pc.Key == "" {
			pc.Key = opts.Simulator.Key
		}
		if pc.Key == "" {
			pc.Key = simulatorKey
		}
		cfg.Policy = cfg.Policy.Faster(opts.Simulator.Speed)
	} else {
		if pc.BaseURL == "" {
			pc.BaseURL = os.Getenv(EnvAPIURL)
		}
		if pc.BaseURL == "" {
			pc.BaseURL = provider.DefaultBaseURL
		}
		if pc.Key == "" {
			pc.Key = os.Getenv(EnvAPIKey)
		}
		if pc.Key == "" {
			return nil, fmt.Errorf("captchafsm: open: %w", &provider.FieldError{Field: "key",
				Problem: "is not set: give Options.APIKey or set " + EnvAPIKey + " (Options.Simulator needs none)"})
		}
	}
	client, err := provider.New(pc)
	if err != nil {
		return nil, fmt.Errorf("captchafsm: open: %w", err)
	}
	if err := cfg.Policy.WithDefaults().Validate(); err != nil {
		return nil, fmt.Errorf("captchafsm: open: %w", err)
	}
	store, err := boltstore.Open(path, opts.Store)
	if err != nil {
		return nil, fmt.Errorf("captchafsm: open: %w", err)
	}
	cfg.Store, cfg.API = store, client
	eng, err := engine.Open(ctx, cfg)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("captchafsm: open %s: %w", path, err)
	}
	return &Solver{Engine: eng, store: store, sim: sim}, nil
}

// Close shuts the engine down gracefully (engine.Engine.Close: requests in
// flight complete and are recorded, unfinished tasks stay in the file for
// the next Open), then closes the file. Later calls return the first's
// result.
func (s *Solver) Close() error { return s.Shutdown(context.Background()) }

// Shutdown is Close with a deadline for the requests in flight
// (engine.Engine.Shutdown).
func (s *Solver) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.closeErr = errors.Join(s.Engine.Shutdown(ctx), s.store.Close())
	})
	return s.closeErr
}

// Store returns the Solver's store, for reads beyond the engine's (Scan,
// Count, Due) and for the dashboard. Close closes it.
func (s *Solver) Store() persist.Store { return s.store }

// Simulator returns the in-process simulator of Options.Simulator (its
// ledger, balance and error mix), nil when the Solver talks to a provider.
func (s *Solver) Simulator() *providersim.Sim { return s.sim }

// The engine's types and errors a bot meets, so that it needs this package
// alone; each is the engine's own.
type (
	// Request is one solve to submit (engine.Request): build it with the
	// typed requests of this package, or spell the method and parameters.
	Request = engine.Request
	// Task is a task as the engine shows it (engine.Task).
	Task = engine.Task
	// Submission says what Enqueue did with a request (engine.Submission).
	Submission = engine.Submission
	// Transition is one committed move (engine.Transition).
	Transition = engine.Transition
	// Policy holds the timing and limits of every solve (engine.Policy).
	Policy = engine.Policy
	// TaskError is a task that ended without an answer (engine.TaskError).
	TaskError = engine.TaskError
	// PendingError is a wait that ended before its task (engine.PendingError).
	PendingError = engine.PendingError
	// RefMode says what a request whose ref names a stored task does
	// (engine.RefMode).
	RefMode = engine.RefMode
)

// The ref modes (engine.RefAttach, engine.RefUnique).
const (
	RefAttach = engine.RefAttach
	RefUnique = engine.RefUnique
)

// The engine's errors a bot matches with errors.Is.
var (
	// ErrFailed matches the error of a task that ended Failed.
	ErrFailed = engine.ErrFailed
	// ErrNeedsAccountFix matches the error of a task parked until the
	// account is fixed (then AccountFixed, or the breaker's own probe).
	ErrNeedsAccountFix = engine.ErrNeedsAccountFix
	// ErrRefConflict: a ref names a stored task of another request.
	ErrRefConflict = engine.ErrRefConflict
	// ErrRefExists: a RefUnique request names a stored ref.
	ErrRefExists = engine.ErrRefExists
	// ErrNotFound: no task has the id or ref.
	ErrNotFound = persist.ErrNotFound
	// ErrInvalid matches every request or option refused before anything
	// was stored or sent.
	ErrInvalid = provider.ErrInvalid
)
