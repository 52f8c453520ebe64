package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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

// List returns tasks without Params, in id (creation) order. With
// opts.States it reads the index on (state, id).
func (s *Store) List(ctx context.Context, opts persist.ListOptions) ([]*persist.Task, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("pgstore: list: limit %d is negative", opts.Limit)
	}
	names := make([]string, 0, len(opts.States))
	for _, st := range opts.States {
		if !st.Valid() {
			return nil, fmt.Errorf("pgstore: list: %q is not a state", st)
		}
		names = append(names, string(st))
	}
	if err := s.check(ctx, "list"); err != nil {
		return nil, err
	}
	var limit *int64
	if opts.Limit > 0 {
		n := int64(opts.Limit)
		limit = &n
	}
	q := "SELECT " + taskCols + " FROM tasks t ORDER BY t.id LIMIT $1"
	args := []any{limit}
	if len(names) > 0 {
		q = "SELECT " + taskCols + " FROM tasks t WHERE t.state = ANY ($2) ORDER BY t.id LIMIT $1"
		args = append(args, names)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*persist.Task, error) { return scanTask(row) })
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	return out, nil
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
	op := "history " + id
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if checkKey("id", id) != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, "SELECT "+recordCols+" FROM history WHERE task_id = $1 ORDER BY seq", id)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persist.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	// Every task has its Created record from birth: none means no task.
	if len(out) == 0 {
		return nil, fmt.Errorf("pgstore: %s: %w", op, persist.ErrNotFound)
	}
	for i, r := range out {
		if r.Seq != uint64(i+1) {
			return nil, fmt.Errorf("pgstore: %s: %w", op, damaged("record %d is missing", i+1))
		}
	}
	return out, nil
}
