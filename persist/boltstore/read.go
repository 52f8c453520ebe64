package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// Get returns the task with its Params, or persist.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*persist.Task, error) {
	var t *persist.Task
	err := s.view(ctx, "get "+id, func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		t, err = getTask(b, id, true)
		return err
	})
	return t, err
}

// GetByRef returns the task whose Ref is ref, or persist.ErrNotFound.
func (s *Store) GetByRef(ctx context.Context, ref string) (*persist.Task, error) {
	var t *persist.Task
	err := s.view(ctx, fmt.Sprintf("get ref %q", ref), func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		id := b.refs.Get([]byte(ref))
		if id == nil {
			return fmt.Errorf("boltstore: get ref %q: %w", ref, persist.ErrNotFound)
		}
		t, err = getTask(b, string(id), true)
		return err
	})
	return t, err
}

// getTask reads and decodes one task, with its params when withParams.
func getTask(b buckets, id string, withParams bool) (*persist.Task, error) {
	v := b.tasks.Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, persist.ErrNotFound)
	}
	t, err := decodeTask(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	if t.ID != id {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, damaged("stored task says its id is %s", t.ID))
	}
	if withParams {
		p := b.params.Get([]byte(id))
		if p == nil {
			return nil, fmt.Errorf("boltstore: get %s: %w", id, damaged("params are missing"))
		}
		if t.Params, err = decodeParams(p); err != nil {
			return nil, fmt.Errorf("boltstore: get %s: %w", id, err)
		}
	}
	return t, nil
}

// List returns tasks without Params, in id (creation) order. With
// opts.States it reads the by-state index, never the tasks of other states.
func (s *Store) List(ctx context.Context, opts persist.ListOptions) ([]*persist.Task, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("boltstore: list: limit %d is negative", opts.Limit)
	}
	for _, st := range opts.States {
		if !st.Valid() {
			return nil, fmt.Errorf("boltstore: list: %q is not a state", st)
		}
	}
	var out []*persist.Task
	err := s.view(ctx, "list", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		if len(opts.States) == 0 {
			c := b.tasks.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if opts.Limit > 0 && len(out) == opts.Limit {
					break
				}
				t, err := decodeTask(v)
				if err != nil {
					return fmt.Errorf("boltstore: list: task %q: %w", k, err)
				}
				out = append(out, t)
			}
			return nil
		}
		// Each state's ids come sorted from the index; only the first
		// Limit of each can be among the first Limit of all.
		var ids []string
		for _, st := range slices.Compact(slices.Sorted(slices.Values(opts.States))) {
			n := 0
			prefix := indexPrefix(st)
			c := b.byState.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if opts.Limit > 0 && n == opts.Limit {
					break
				}
				ids = append(ids, string(k[len(prefix):]))
				n++
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("boltstore: list: %w", err)
			}
		}
		slices.Sort(ids)
		if opts.Limit > 0 && len(ids) > opts.Limit {
			ids = ids[:opts.Limit]
		}
		out = make([]*persist.Task, 0, len(ids))
		for _, id := range ids {
			t, err := getTask(b, id, false)
			if err != nil {
				return fmt.Errorf("boltstore: list: index names a task that cannot be read: %w", err)
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Count returns the number of tasks per state, from the by-state index;
// states without tasks are absent from the map.
func (s *Store) Count(ctx context.Context) (map[states.State]int, error) {
	counts := map[states.State]int{}
	err := s.view(ctx, "count", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		c := b.byState.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			st, _, err := splitIndexKey(k)
			if err != nil {
				return fmt.Errorf("boltstore: count: %w", err)
			}
			counts[st]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// History returns the task's records in sequence order, or
// persist.ErrNotFound.
func (s *Store) History(ctx context.Context, id string) ([]persist.Record, error) {
	var out []persist.Record
	err := s.view(ctx, "history "+id, func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		prefix := historyPrefix(id)
		c := b.history.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("boltstore: history %s: %w", id, err)
			}
			if !bytes.Equal(k, historyKey(id, r.Seq)) {
				return fmt.Errorf("boltstore: history %s: %w", id, damaged("record %d is stored under key %x", r.Seq, k))
			}
			out = append(out, r)
		}
		if len(out) == 0 {
			// Every task has its first record: no records, no task.
			return fmt.Errorf("boltstore: history %s: %w", id, persist.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
