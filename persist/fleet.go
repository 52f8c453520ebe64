package persist

import (
	"context"
	"time"
)

// Leaser is implemented by stores that several engines share (a fleet of
// bot processes on many hosts, as persist/pgstore allows). An engine on a
// Leaser drives only the tasks it holds a lease on, so no two engines drive
// one task at once; a task whose owner died is taken over when its lease
// expires and resumed from its persisted state.
//
// bbolt admits one process, so boltstore is not a Leaser: an engine on it
// owns every task.
type Leaser interface {
	// Claim leases to owner, until now+ttl, up to limit tasks that are in
	// Submitting, Backoff, Polling or Resubmitting and whose lease is free
	// or expired, earliest NextAt first, and returns them (without Params).
	// Tasks owner already holds are not returned again.
	Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]*Task, error)
	// Renew extends owner's leases on ids to now+ttl and returns the ids
	// whose lease owner no longer holds (taken over after it expired).
	Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) (lost []string, err error)
	// Release gives up owner's leases on ids (at shutdown).
	Release(ctx context.Context, owner string, ids []string) error
}

// Fleet is implemented by shared stores that also share the account-wide
// conditions among engines: one engine's ERROR_ZERO_BALANCE opens the
// breaker of all, a ban stops all, and the submit rate is the fleet's.
type Fleet interface {
	// SetBreaker opens (with the code that caused it) or closes the
	// fleet-wide breaker.
	SetBreaker(ctx context.Context, open bool, code string) error
	// Pause stops submits (and/or polls) of every engine until until.
	Pause(ctx context.Context, submits, polls bool, until time.Time) error
	// Conditions returns the fleet-wide breaker and pauses.
	Conditions(ctx context.Context) (Conditions, error)
	// ReserveSubmit books the fleet's next in.php slot at rate per second
	// and returns when this engine may send.
	ReserveSubmit(ctx context.Context, rate float64) (time.Time, error)
}

// Conditions are the fleet-wide state of the account.
type Conditions struct {
	BreakerOpen bool
	BreakerCode string
	SubmitUntil time.Time // no submits before
	PollUntil   time.Time // no polls before
}

// ProbeClaimer is implemented by shared stores that let one engine of a
// fleet at a time check the account while the fleet's breaker is open (the
// engine's half-open breaker probes with a free getbalance). Without it
// every engine of the fleet probes on its own.
type ProbeClaimer interface {
	// ClaimProbe reports whether owner may probe now: true for at most one
	// engine of the fleet per every.
	ClaimProbe(ctx context.Context, owner string, every time.Duration) (bool, error)
}
