package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// Get returns the task with its Params, or persist.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*persist.Task, error) {
	return s.getWhere(ctx, "get "+id, "t.id = $1", id)
}

// GetByRef returns the task whose Ref is ref, or persist.ErrNotFound.
func (s *Store) GetByRef(ctx context.Context, ref string) (*persist.Task, error) {
	return s.getWhere(ctx, fmt.Sprintf("get ref %q", ref), "t.ref = $1", ref)
}

func (s *Store) getWhere(ctx context.Context, op, cond, arg string) (*persist.Task, error) {
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if checkKey("key", arg) != nil {
		// No stored id or ref can equal it (and PostgreSQL would refuse it).
		return nil, fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	}
	var params []byte
	t, err := scanTask(s.pool.QueryRow(ctx,
		"SELECT "+taskCols+", p.params FROM tasks t LEFT JOIN params p ON p.task_id = t.id WHERE "+cond, arg),
		&params)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	case err != nil:
		return nil, s.fail(ctx, op, err)
	}
	if t.Params, err = decodeParams(t.ID, params); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return t, nil
}

// scanPage is how many tasks (or records) one query of Scan (or
// ScanHistory) reads: each page is a query of its own (keyset paging on
// the primary key), so no connection or snapshot is held while fn runs.
const scanPage = 1000

// List returns tasks without Params, in id (creation) order, reversed with
// opts.Reverse, read as Scan reads them. With opts.States it reads the
// index on (state, id).
func (s *Store) List(ctx context.Context, opts persist.ListOptions) ([]*persist.Task, error) {
	var out []*persist.Task
	err := s.scan(ctx, "list", opts, func(t *persist.Task) error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan calls fn with each task opts selects (without Params), in id order
// (reversed with opts.Reverse), reading pages of scanPage tasks, each one
// query; see persist.Store.
func (s *Store) Scan(ctx context.Context, opts persist.ListOptions, fn func(*persist.Task) error) error {
	return s.scan(ctx, "scan", opts, fn)
}

func (s *Store) scan(ctx context.Context, op string, opts persist.ListOptions, fn func(*persist.Task) error) error {
	if opts.Limit < 0 {
		return fmt.Errorf("pgstore: %s: limit %d is negative", op, opts.Limit)
	}
	names := make([]string, 0, len(opts.States))
	for _, st := range opts.States {
		if !st.Valid() {
			return fmt.Errorf("pgstore: %s: %q is not a state", op, st)
		}
		names = append(names, string(st))
	}
	after := opts.After
	if after != "" && checkKey("after", after) != nil {
		// No id can hold it; PostgreSQL would refuse it as text.
		return fmt.Errorf("pgstore: %s: ListOptions.After %q is not an id", op, after)
	}
	cmp, order := ">", "ASC"
	if opts.Reverse {
		cmp, order = "<", "DESC"
	}
	seen := 0
	for {
		if err := s.check(ctx, op); err != nil {
			return err
		}
		want := scanPage
		if opts.Limit > 0 {
			want = min(want, opts.Limit-seen)
		}
		var where []string
		args := []any{want}
		if after != "" {
			args = append(args, after)
			where = append(where, fmt.Sprintf("t.id %s $%d", cmp, len(args)))
		}
		if len(names) > 0 {
			args = append(args, names)
			where = append(where, fmt.Sprintf("t.state = ANY ($%d)", len(args)))
		}
		q := "SELECT " + taskCols + " FROM tasks t"
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += " ORDER BY t.id " + order + " LIMIT $1"
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return s.fail(ctx, op, err)
		}
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*persist.Task, error) { return scanTask(row) })
		if err != nil {
			return s.fail(ctx, op, err)
		}
		if len(page) > 0 {
			after = page[len(page)-1].ID
		}
		for _, t := range page {
			if err := fn(t); err != nil {
				return err
			}
		}
		seen += len(page)
		if len(page) < want || (opts.Limit > 0 && seen >= opts.Limit) {
			return nil
		}
	}
}

// dueSQL reads active tasks in exact (NextAt, ID) order through the index
// tasks_due: a zero NextAt (NULL) is -infinity. The cursor and the bound
// are index conditions of their own variant of the statement (an OR on a
// parameter would make a generic plan filter every row from the start).
const dueSQL = `
SELECT ` + taskCols + ` FROM tasks t
WHERE t.state IN ('Submitting', 'Backoff', 'Polling', 'Resubmitting')%s
ORDER BY COALESCE(t.next_at, '-infinity'::timestamptz), t.next_at_ns, t.id
LIMIT $1`

const (
	dueAfter = `
    AND (COALESCE(t.next_at, '-infinity'::timestamptz), t.next_at_ns, t.id) > ($%d::timestamptz, $%d::smallint, $%d::text)`
	dueUntil = `
    AND (COALESCE(t.next_at, '-infinity'::timestamptz), t.next_at_ns) <= ($%d::timestamptz, $%d::smallint)`
)

// Due returns active tasks without Params in (NextAt, ID) order, in one
// query; see persist.Store. Its index is exact: each task's DueAt is its
// NextAt.
func (s *Store) Due(ctx context.Context, opts persist.DueOptions) ([]*persist.Task, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("pgstore: due: limit %d is negative", opts.Limit)
	}
	if err := s.check(ctx, "due"); err != nil {
		return nil, err
	}
	var limit *int64
	if opts.Limit > 0 {
		n := int64(opts.Limit)
		limit = &n
	}
	args := []any{limit}
	var where string
	if opts.After != (persist.DueCursor{}) {
		if checkKey("id", opts.After.ID) != nil {
			return nil, fmt.Errorf("pgstore: due: DueOptions.After.ID %q is not an id", opts.After.ID)
		}
		at, ns := dueTime(opts.After.At)
		args = append(args, at, ns, opts.After.ID)
		where += fmt.Sprintf(dueAfter, len(args)-2, len(args)-1, len(args))
	}
	if !opts.Until.IsZero() {
		at, ns := dueTime(opts.Until)
		args = append(args, at, ns)
		where += fmt.Sprintf(dueUntil, len(args)-1, len(args))
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(dueSQL, where), args...)
	if err != nil {
		return nil, s.fail(ctx, "due", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*persist.Task, error) { return scanTask(row) })
	if err != nil {
		return nil, s.fail(ctx, "due", err)
	}
	for _, t := range out {
		t.DueAt = t.NextAt // this index is always exact
	}
	return out, nil
}

// dueTime is a time as the due index orders it: the zero time is
// -infinity, as a NULL next_at.
func dueTime(t time.Time) (pgtype.Timestamptz, int16) {
	if t.IsZero() {
		return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, 0
	}
	us, ns := splitTime(t)
	return pgtype.Timestamptz{Time: *us, Valid: true}, ns
}

// lastSubmitSQL reads the latest submit intent through the partial index
// history_submits, and the latest one Prune deleted.
const lastSubmitSQL = `
SELECT at, at_ns FROM (
    (SELECT at, at_ns FROM history WHERE event = 'submit_sending' ORDER BY at DESC, at_ns DESC LIMIT 1)
    UNION ALL
    (SELECT pruned_submit, pruned_submit_ns FROM fleet WHERE id = 1 AND pruned_submit IS NOT NULL)
) x ORDER BY at DESC, at_ns DESC LIMIT 1`

// LastSubmit returns the latest At of the committed submit_sending
// records, those of pruned tasks included (zero when there is none); see
// persist.Store.
func (s *Store) LastSubmit(ctx context.Context) (time.Time, error) {
	if err := s.check(ctx, "last submit"); err != nil {
		return time.Time{}, err
	}
	var (
		at *time.Time
		ns int16
	)
	err := s.pool.QueryRow(ctx, lastSubmitSQL).Scan(&at, &ns)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, s.fail(ctx, "last submit", err)
	}
	return joinTime(at, ns), nil
}

// Count returns the number of tasks per state; states without tasks are
// absent from the map.
func (s *Store) Count(ctx context.Context) (map[states.State]int, error) {
	if err := s.check(ctx, "count"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT state, count(*) FROM tasks GROUP BY state")
	if err != nil {
		return nil, s.fail(ctx, "count", err)
	}
	counts := map[states.State]int{}
	var (
		state string
		n     int
	)
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		st := states.State(state)
		if !st.Valid() {
			return damaged("a task's state %q is not a state", state)
		}
		counts[st] = n
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "count", err)
	}
	return counts, nil
}

// History returns the task's records in sequence order, or
// persist.ErrNotFound.
func (s *Store) History(ctx context.Context, id string) ([]persist.Record, error) {
	var out []persist.Record
	err := s.scanHistory(ctx, "history "+id, id, func(r persist.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ScanHistory calls fn with each of the task's records in sequence order,
// reading pages of scanPage records, each one query; see persist.Store.
func (s *Store) ScanHistory(ctx context.Context, id string, fn func(persist.Record) error) error {
	return s.scanHistory(ctx, "history "+id, id, fn)
}

func (s *Store) scanHistory(ctx context.Context, op, id string, fn func(persist.Record) error) error {
	if err := s.check(ctx, op); err != nil {
		return err
	}
	if checkKey("id", id) != nil {
		return fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	}
	var last int64
	for {
		rows, err := s.pool.Query(ctx, "SELECT "+recordCols+" FROM history WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
			id, last, scanPage)
		if err != nil {
			return s.fail(ctx, op, err)
		}
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persist.Record, error) { return scanRecord(row) })
		if err != nil {
			return s.fail(ctx, op, err)
		}
		// Every task has its Created record from birth: none means no task.
		if last == 0 && len(page) == 0 {
			return fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
		}
		for i, r := range page {
			if r.Seq != uint64(last)+uint64(i)+1 {
				return fmt.Errorf("pgstore: %s: %w", op, damaged("record %d is missing", uint64(last)+uint64(i)+1))
			}
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		last = int64(page[len(page)-1].Seq)
		if err := s.check(ctx, op); err != nil {
			return err
		}
	}
}

var _ persist.Sizer = (*Store)(nil)

// Space returns the size of the store's tables with their indexes and
// TOAST data (pg_total_relation_size) as Used. PostgreSQL keeps the room
// of deleted rows in its tables for later rows (autovacuum), so a Prune
// shrinks Used only when VACUUM can give a table's end back; Free, File
// and Disk are zero: the server's files are not the store's to measure.
func (s *Store) Space(ctx context.Context) (persist.Space, error) {
	if err := s.check(ctx, "space"); err != nil {
		return persist.Space{}, err
	}
	var used int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'`, s.schema).Scan(&used)
	if err != nil {
		return persist.Space{}, s.fail(ctx, "space", err)
	}
	return persist.Space{Used: used}, nil
}
