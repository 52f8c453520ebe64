package pgstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/captchafsm/captchafsm/persist"
)

// The fleet's conditions live in the one row of the fleet table. Times in
// it are the database server's: an engine's times are turned into
// durations from its own now on the way in, and back on the way out, so
// that hosts whose clocks disagree still pause together and share one
// submit pace.

// SetBreaker opens (with the code that caused it) or closes the fleet-wide
// breaker.
func (s *Store) SetBreaker(ctx context.Context, open bool, code string) error {
	if err := s.check(ctx, "set breaker"); err != nil {
		return err
	}
	if !open {
		code = ""
	}
	_, err := s.pool.Exec(ctx,
		"UPDATE fleet SET breaker_open = $1, breaker_code = $2, breaker_at = clock_timestamp() WHERE id = 1",
		open, clean(code))
	if err != nil {
		return s.fail(ctx, "set breaker", err)
	}
	return nil
}

// Pause stops submits (and/or polls) of every engine until until. A pause
// never shortens one already in force.
func (s *Store) Pause(ctx context.Context, submits, polls bool, until time.Time) error {
	if err := s.check(ctx, "pause"); err != nil {
		return err
	}
	if !submits && !polls {
		return nil
	}
	d := time.Until(until)
	if d <= 0 {
		return nil // over already
	}
	_, err := s.pool.Exec(ctx, `
UPDATE fleet SET
    submit_until = CASE WHEN $1 THEN greatest(submit_until, clock_timestamp() + $3 * interval '1 microsecond') ELSE submit_until END,
    poll_until = CASE WHEN $2 THEN greatest(poll_until, clock_timestamp() + $3 * interval '1 microsecond') ELSE poll_until END
WHERE id = 1`, submits, polls, d.Microseconds())
	if err != nil {
		return s.fail(ctx, "pause", err)
	}
	return nil
}

// Conditions returns the fleet-wide breaker and pauses, the pauses in this
// host's clock.
func (s *Store) Conditions(ctx context.Context) (persist.Conditions, error) {
	var c persist.Conditions
	if err := s.check(ctx, "conditions"); err != nil {
		return c, err
	}
	var submit, poll *float64
	t0 := time.Now()
	err := s.pool.QueryRow(ctx, `
SELECT breaker_open, breaker_code,
    extract(epoch FROM submit_until - clock_timestamp())::float8,
    extract(epoch FROM poll_until - clock_timestamp())::float8
FROM fleet WHERE id = 1`).Scan(&c.BreakerOpen, &c.BreakerCode, &submit, &poll)
	if err != nil {
		return c, s.fail(ctx, "conditions", err)
	}
	now := midpoint(t0, time.Now())
	c.SubmitUntil, c.PollUntil = local(now, submit), local(now, poll)
	return c, nil
}

// ReserveSubmit books the fleet's next in.php slot at rate per second and
// returns when this engine may send, in this host's clock. One row holds
// the fleet's next free slot; each call takes the later of it and the
// server's now, and moves it on by 1/rate, in one statement, so engines
// together send no faster than rate.
func (s *Store) ReserveSubmit(ctx context.Context, rate float64) (time.Time, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return time.Time{}, fmt.Errorf("pgstore: reserve submit: rate %v is not a positive number", rate)
	}
	if err := s.check(ctx, "reserve submit"); err != nil {
		return time.Time{}, err
	}
	step := max(int64(math.Round(1e6/rate)), 1) // microseconds
	var wait float64
	t0 := time.Now()
	err := s.pool.QueryRow(ctx, `
UPDATE fleet SET next_submit = greatest(next_submit, clock_timestamp()) + $1 * interval '1 microsecond'
WHERE id = 1
RETURNING extract(epoch FROM next_submit - $1 * interval '1 microsecond' - clock_timestamp())::float8`, step).Scan(&wait)
	if err != nil {
		return time.Time{}, s.fail(ctx, "reserve submit", err)
	}
	return local(midpoint(t0, time.Now()), &wait), nil
}

// midpoint is halfway between a and b: the best guess of when, in this
// host's clock, the server read its clock during a call made from a to b.
func midpoint(a, b time.Time) time.Time { return a.Add(b.Sub(a) / 2) }

// local returns now plus secs (seconds from the server's now), or the zero
// time when secs is nil (NULL: no such time).
func local(now time.Time, secs *float64) time.Time {
	if secs == nil {
		return time.Time{}
	}
	return now.Add(time.Duration(*secs * float64(time.Second)))
}

// ClaimProbe reports whether owner may probe the account now (the engine's
// half-open breaker, persist.ProbeClaimer): true for one engine of the
// fleet per every, in one statement that moves the claim on only when the
// last one has run out.
func (s *Store) ClaimProbe(ctx context.Context, owner string, every time.Duration) (bool, error) {
	if err := s.check(ctx, "claim the account probe"); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
UPDATE fleet SET probe_until = clock_timestamp() + $2 * interval '1 microsecond', probe_owner = $1
WHERE id = 1 AND (probe_until IS NULL OR probe_until <= clock_timestamp())`, clean(owner), every.Microseconds())
	if err != nil {
		return false, s.fail(ctx, "claim the account probe", err)
	}
	return tag.RowsAffected() == 1, nil
}

var _ persist.ProbeClaimer = (*Store)(nil)
