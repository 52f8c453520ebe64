package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// createSQL inserts one task, its params and its first history record.
const createSQL = `
WITH t AS (
    INSERT INTO tasks (id, ref, method, state, code, submits, retries, resubmits, polls, provider_id,
        next_at, next_at_ns, poll_since, poll_since_ns, token, cost, created, created_ns, updated, updated_ns,
        owner, lease_until, lease_until_ns, seq, deadline, deadline_ns, priority, max_retries, max_resubmits, labels)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, 1,
        $26, $27, $28, $29, $30, $31::jsonb)
    RETURNING id
), p AS (
    INSERT INTO params (task_id, params) SELECT id, $24::json FROM t
)
INSERT INTO history (task_id, seq, at, at_ns, event, to_state)
SELECT id, 1, $17::timestamptz, $18::smallint, $25::text, $4::text FROM t`

// Create stores new tasks, each with its params and first history record
// (seq 1, event transitions.Created, to Submitting), in one transaction:
// all or none.
//
// A task's ID must be set; its State must be empty or Submitting. Zero
// Created and Updated times are set to now; Owner and LeaseUntil are
// stored as given (an engine creates the tasks it will drive already
// leased). On success each task's State, Seq (1), Created and Updated are
// set as stored; on failure the tasks are unchanged. An ID already stored
// (or given twice) fails with persist.ErrDuplicateID, a Ref with
// persist.ErrDuplicateRef.
//
// Create is one round trip: the inserts go in one pipelined batch that
// the server runs as one implicit transaction. Once it is sent Create no
// longer heeds ctx (see Options.WriteTimeout), so an error means nothing
// was stored.
func (s *Store) Create(ctx context.Context, tasks ...*persist.Task) error {
	if err := s.check(ctx, "create"); err != nil {
		return err
	}
	now := time.Now()
	preps := make([]persist.Task, len(tasks))
	batch := &pgx.Batch{}
	for i, t := range tasks {
		switch {
		case t == nil:
			return fmt.Errorf("pgstore: create: task %d is nil", i)
		case t.ID == "":
			return fmt.Errorf("pgstore: create: task %d has no id", i)
		case t.State != "" && t.State != transitions.Initial:
			return fmt.Errorf("pgstore: create %s: state is %s, a new task starts in %s", t.ID, t.State, transitions.Initial)
		}
		if err := checkKey("id", t.ID); err != nil {
			return fmt.Errorf("pgstore: create: task %d: %w", i, err)
		}
		if err := checkKey("ref", t.Ref); err != nil {
			return fmt.Errorf("pgstore: create %s: %w", t.ID, err)
		}
		if err := persist.ValidateOptions(t.Options); err != nil {
			return fmt.Errorf("pgstore: create %s: %w", t.ID, err)
		}
		c := *t
		c.Params = nil
		c.State = transitions.Initial
		c.Seq = 1
		c.Intent = false
		if c.Created.IsZero() {
			c.Created = now
		}
		if c.Updated.IsZero() {
			c.Updated = c.Created
		}
		labels, err := encodeLabels(t.Options.Labels)
		if err != nil {
			return fmt.Errorf("pgstore: create %s: %w", t.ID, err)
		}
		params, err := encodeParams(t.Params)
		if err != nil {
			return fmt.Errorf("pgstore: create %s: %w", t.ID, err)
		}
		preps[i] = c
		nextAt, nextNs := splitTime(c.NextAt)
		pollSince, pollNs := splitTime(c.PollSince)
		created, createdNs := splitTime(c.Created)
		updated, updatedNs := splitTime(c.Updated)
		lease, leaseNs := splitTime(c.LeaseUntil)
		deadline, deadlineNs := splitTime(c.Options.Deadline)
		batch.Queue(createSQL, c.ID, nullText(c.Ref), clean(c.Method), string(c.State), clean(c.Code),
			c.Submits, c.Retries, c.Resubmits, c.Polls, clean(c.ProviderID),
			nextAt, nextNs, pollSince, pollNs, clean(c.Token), clean(c.Cost),
			created, createdNs, updated, updatedNs, clean(c.Owner), lease, leaseNs,
			params, string(transitions.Created),
			deadline, deadlineNs, c.Options.Priority, c.Options.MaxRetries, c.Options.MaxResubmits,
			labels)
	}
	if len(tasks) == 0 {
		return nil
	}

	// One pipelined batch, one round trip: without BEGIN the server runs
	// the batch's statements in one implicit transaction, all or none.
	wctx, cancel := s.writeCtx(ctx)
	defer cancel()
	br := s.pool.SendBatch(wctx, batch)
	var err error
	for i := range preps {
		if _, err = br.Exec(); err != nil {
			err = createError(&preps[i], err)
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var known *createErr
		if errors.As(err, &known) {
			return known.err
		}
		return s.fail(ctx, "create", err)
	}
	for i, t := range tasks {
		p := &preps[i]
		t.State, t.Seq, t.Created, t.Updated, t.Intent = p.State, p.Seq, p.Created, p.Updated, false
	}
	return nil
}

// createErr carries an error of Create that needs no further wrapping.
type createErr struct{ err error }

func (e *createErr) Error() string { return e.err.Error() }

// createError names the task whose insert failed and maps unique
// violations to the persist sentinels.
func createError(t *persist.Task, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == codeUniqueViolation {
		switch pe.ConstraintName {
		case "tasks_pkey":
			return &createErr{fmt.Errorf("pgstore: create %s: %w", t.ID, persist.ErrDuplicateID)}
		case "tasks_ref_key":
			return &createErr{fmt.Errorf("pgstore: create %s: ref %q: %w", t.ID, t.Ref, persist.ErrDuplicateRef)}
		}
	}
	return fmt.Errorf("task %s: %w", t.ID, err)
}

// applySQL commits one transition in one statement (so one transaction):
// the task's row is updated only if it is in the record's From state at
// the caller's Seq and is not leased to another owner, and the history
// record is inserted only if the row was.
const applySQL = `
WITH u AS (
    UPDATE tasks SET state = $5, code = $6, submits = $7, retries = $8, resubmits = $9, polls = $10,
        provider_id = $11, next_at = $12, next_at_ns = $13, poll_since = $14, poll_since_ns = $15,
        token = $16, cost = $17, updated = $18, updated_ns = $19, seq = seq + 1,
        intent = $22::text = 'submit_sending' -- transitions.InDoubt
    WHERE id = $1 AND state = $2 AND seq = $3 AND ($4 = '' OR owner = '' OR owner = $4)
    RETURNING id, seq, owner, lease_until, lease_until_ns
), h AS (
    INSERT INTO history (task_id, seq, at, at_ns, from_state, event, to_state, code, detail, provider_id, possibly_charged)
    SELECT id, seq, $20::timestamptz, $21::smallint, $2::text, $22::text, $5::text, $23::text, $24::text, $25::text, $26::boolean FROM u
)
SELECT seq, owner, lease_until, lease_until_ns FROM u`

// Apply commits one transition; see persist.Store. The history record and
// the task's new fields are written by one statement, so together or not
// at all, and Apply returns once the commit is durable (concurrent
// commits share WAL flushes).
//
// A zero rec.At is set to now and a zero t.Updated to rec.At. The task's
// State must be rec.To. Ref, Method, Options, Created and Params are kept as
// stored, and so are Owner and LeaseUntil, which only Claim, Renew and
// Release change; on success t's Owner and LeaseUntil are set as stored,
// and t.Intent to whether rec.Event is transitions.SubmitSending. The due
// index and LastSubmit are indexes of the same rows.
// A task whose t.Owner is set but that is leased to another owner fails
// with persist.ErrConflict: an engine whose lease was taken over cannot
// commit a step of a task it no longer drives.
//
// If ctx has ended Apply returns its error and writes nothing; once the
// statement is sent, Apply waits for its outcome (see
// Options.WriteTimeout).
func (s *Store) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	switch {
	case t == nil || rec == nil:
		return errors.New("pgstore: apply: nil task or record")
	case t.ID == "":
		return errors.New("pgstore: apply: task has no id")
	}
	op := "apply " + t.ID
	if err := s.check(ctx, op); err != nil {
		return err
	}
	switch {
	case !rec.To.Valid():
		return fmt.Errorf("pgstore: %s: record's target state %q is not a state", op, rec.To)
	case !rec.From.Valid():
		return fmt.Errorf("pgstore: %s: record's source state %q is not a state", op, rec.From)
	case rec.Event == "":
		return fmt.Errorf("pgstore: %s: record has no event", op)
	case t.State != rec.To:
		return fmt.Errorf("pgstore: %s: task state %s is not the record's target %s", op, t.State, rec.To)
	case t.Seq > 1<<62:
		return fmt.Errorf("pgstore: %s: seq %d is out of range: %w", op, t.Seq, persist.ErrConflict)
	}
	at := rec.At
	if at.IsZero() {
		at = time.Now()
	}
	updatedT := t.Updated
	if updatedT.IsZero() {
		updatedT = at
	}
	nextAt, nextNs := splitTime(t.NextAt)
	pollSince, pollNs := splitTime(t.PollSince)
	updated, updatedNs := splitTime(updatedT)
	atT, atNs := splitTime(at)

	wctx, cancel := s.writeCtx(ctx)
	defer cancel()
	var (
		seq     int64
		owner   string
		lease   *time.Time
		leaseNs int16
	)
	err := s.pool.QueryRow(wctx, applySQL, t.ID, string(rec.From), int64(t.Seq), t.Owner,
		string(t.State), clean(t.Code), t.Submits, t.Retries, t.Resubmits, t.Polls,
		clean(t.ProviderID), nextAt, nextNs, pollSince, pollNs, clean(t.Token), clean(t.Cost), updated, updatedNs,
		atT, atNs, clean(string(rec.Event)), clean(rec.Code), clean(rec.Detail), clean(rec.ProviderID), rec.PossiblyCharged,
	).Scan(&seq, &owner, &lease, &leaseNs)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.applyRefused(ctx, t, rec.From)
	}
	if err != nil {
		return s.fail(ctx, op, err)
	}
	t.Seq, rec.Seq = uint64(seq), uint64(seq)
	rec.At, t.Updated = at, updatedT
	t.Intent = transitions.InDoubt(rec.Event)
	t.Owner, t.LeaseUntil = owner, joinTime(lease, leaseNs)
	return nil
}

// applyRefused tells why Apply's statement matched no row: the task is
// gone (persist.ErrNotFound) or has moved on, or is another's
// (persist.ErrConflict).
func (s *Store) applyRefused(ctx context.Context, t *persist.Task, from states.State) error {
	op := "apply " + t.ID
	var (
		state, owner string
		seq          int64
	)
	err := s.pool.QueryRow(ctx, "SELECT state, seq, owner FROM tasks WHERE id = $1", t.ID).Scan(&state, &seq, &owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	case err != nil:
		return fmt.Errorf("pgstore: %s: %w (why the transition was refused is unknown: %v)", op, persist.ErrConflict, err)
	case states.State(state) == from && uint64(seq) == t.Seq && t.Owner != "" && owner != "" && owner != t.Owner:
		return fmt.Errorf("pgstore: %s: the task is leased to %s, not %s: %w", op, owner, t.Owner, persist.ErrConflict)
	}
	return fmt.Errorf("pgstore: %s: stored task is %s at seq %d, the transition is from %s at seq %d: %w",
		op, state, seq, from, t.Seq, persist.ErrConflict)
}

// pruneChunk is how many tasks one Prune statement deletes, so that a
// large prune holds no lock for long.
const pruneChunk = 1000

// pruneSQL deletes up to pruneChunk terminal tasks updated before the
// cutoff; history and params go with them (ON DELETE CASCADE). The outer
// conditions are checked again on rows that changed under the statement.
// The latest submit intent of the deleted tasks is kept in the fleet row,
// so that LastSubmit never moves back.
const pruneSQL = `
WITH d AS (
    DELETE FROM tasks
    WHERE id = ANY (ARRAY(
            SELECT id FROM tasks
            WHERE state IN ('Done', 'Failed') AND (updated, updated_ns) < ($1, $2)
            ORDER BY id LIMIT $3))
        AND state IN ('Done', 'Failed') AND (updated, updated_ns) < ($1, $2)
    RETURNING id
), s AS (
    SELECT h.at, h.at_ns FROM history h JOIN d ON h.task_id = d.id
    WHERE h.event = 'submit_sending'
    ORDER BY h.at DESC, h.at_ns DESC LIMIT 1
), f AS (
    UPDATE fleet SET pruned_submit = s.at, pruned_submit_ns = s.at_ns FROM s
    WHERE fleet.id = 1 AND (fleet.pruned_submit IS NULL OR (fleet.pruned_submit, fleet.pruned_submit_ns) < (s.at, s.at_ns))
)
SELECT count(*) FROM d`

// Prune deletes terminal (Done, Failed) tasks last updated before cutoff,
// with their history and params, and returns how many it deleted. It
// deletes in statements of at most 1000 tasks; when ctx ends it stops
// between two and returns the count so far with ctx's error. PostgreSQL's
// autovacuum reclaims the space.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.check(ctx, "prune"); err != nil {
		return 0, err
	}
	cut, cutNs := splitTime(cutoff)
	if cut == nil {
		return 0, nil // nothing is updated before the zero time
	}
	deleted := 0
	for {
		if err := s.check(ctx, "prune"); err != nil {
			return deleted, err
		}
		var n int
		if err := s.pool.QueryRow(ctx, pruneSQL, cut, cutNs, pruneChunk).Scan(&n); err != nil {
			return deleted, s.fail(ctx, "prune", err)
		}
		deleted += n
		if n < pruneChunk {
			break
		}
	}
	if deleted > 0 {
		s.log.Info("pgstore: pruned", logDB, s.where, logSchema, s.schema, logCount, deleted)
	}
	return deleted, nil
}
