package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	t, err := readTask(b, id)
	if err != nil {
		return nil, err
	}
	t.DueAt = time.Time{} // only Due reports it
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

// readTask reads and decodes one task, without params, with its DueAt
// (see decodeTaskDue).
func readTask(b buckets, id string) (*persist.Task, error) {
	// No id holds a 0x00 (Create refuses them); for such a string, id+0x01
	// can be the key of another task's record, which is no damage.
	var v []byte
	if strings.IndexByte(id, 0) < 0 {
		v = b.taskValue(id)
	}
	if v == nil {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, persist.ErrNotFound)
	}
	t, err := decodeTaskDue(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	if t.ID != id {
		return nil, fmt.Errorf("boltstore: get %s: %w", id, damaged("stored task says its id is %s", t.ID))
	}
	return t, nil
}

// scanPage is how many tasks (or records) one read transaction of Scan
// (or ScanHistory) reads: enough to make a transaction's cost vanish,
// few enough to keep memory flat and never hold a read for long (a long
// read transaction stops bbolt from growing the file's memory map, so the
// writer would wait for it).
const scanPage = 1000

// List returns tasks without Params, in id (creation) order, reversed with
// opts.Reverse, read as Scan reads them. With opts.States it reads the
// by-state index, never the tasks of other states.
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
// (reversed with opts.Reverse); see persist.Store. It reads pages of
// scanPage tasks, each in a read transaction of its own, and calls fn
// between them. After each page it lets go of the file's mapped pages
// (see dropMapped), so that the process's resident memory stays flat too.
func (s *Store) Scan(ctx context.Context, opts persist.ListOptions, fn func(*persist.Task) error) error {
	return s.scan(ctx, "scan", opts, fn)
}

func (s *Store) scan(ctx context.Context, op string, opts persist.ListOptions, fn func(*persist.Task) error) error {
	if opts.Limit < 0 {
		return fmt.Errorf("boltstore: %s: limit %d is negative", op, opts.Limit)
	}
	for _, st := range opts.States {
		if !st.Valid() {
			return fmt.Errorf("boltstore: %s: %q is not a state", op, st)
		}
	}
	sel := slices.Compact(slices.Sorted(slices.Values(opts.States)))
	after, seen := opts.After, 0
	page := make([]*persist.Task, 0, scanPage)
	for {
		want := scanPage
		if opts.Limit > 0 {
			want = min(want, opts.Limit-seen)
		}
		page = page[:0]
		err := s.view(ctx, op, func(tx *bbolt.Tx) error {
			b, err := bucketsOf(tx)
			if err != nil {
				return err
			}
			page, err = readPage(b, sel, after, opts.Reverse, want, page)
			dropMapped(tx)
			return err
		})
		if err != nil {
			return err
		}
		n := len(page)
		if n > 0 {
			after = page[n-1].ID
		}
		for i, t := range page {
			page[i] = nil // fn owns it now
			if err := fn(t); err != nil {
				return err
			}
		}
		seen += n
		if n < want || (opts.Limit > 0 && seen >= opts.Limit) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boltstore: %s: %w", op, err)
		}
	}
}

// readPage appends to page up to want tasks after (before, with reverse)
// the id after, of the states sel (all when empty).
func readPage(b buckets, sel []states.State, after string, reverse bool, want int, page []*persist.Task) ([]*persist.Task, error) {
	if len(sel) == 0 {
		c := b.history.Cursor()
		k, v, err := seekTaskAfter(c, after, reverse)
		for ; err == nil && k != nil && len(page) < want; k, v, err = nextTask(c, k, reverse) {
			id := k[:len(k)-1]
			t, err := decodeTask(v)
			if err != nil {
				return page, fmt.Errorf("boltstore: list: task %q: %w", id, err)
			}
			if t.ID != string(id) {
				// The next page starts after t.ID: a key that is not the
				// task's could send it back to this one.
				return page, fmt.Errorf("boltstore: list: task %q: %w", id, damaged("stored task says its id is %s", t.ID))
			}
			page = append(page, t)
		}
		if err != nil {
			return page, fmt.Errorf("boltstore: list: %w", err)
		}
		return page, nil
	}
	// Each state's ids come sorted from the by-state index: merge them.
	type head struct {
		c      *bbolt.Cursor
		st     states.State
		prefix []byte
		id     []byte // nil once the state is done
	}
	heads := make([]head, len(sel))
	for i, st := range sel {
		h := head{c: b.byState.Cursor(), st: st, prefix: indexPrefix(st)}
		k, _ := seekAfter(h.c, h.prefix, after, reverse)
		if k != nil && bytes.HasPrefix(k, h.prefix) {
			h.id = k[len(h.prefix):]
		}
		heads[i] = h
	}
	for len(page) < want {
		best := -1
		for i, h := range heads {
			if h.id == nil {
				continue
			}
			if best < 0 || (bytes.Compare(h.id, heads[best].id) < 0) != reverse {
				best = i
			}
		}
		if best < 0 {
			break
		}
		h := &heads[best]
		id := string(h.id)
		t, err := getTask(b, id, false)
		if err != nil {
			return page, fmt.Errorf("boltstore: list: index names a task that cannot be read: %w", err)
		}
		if t.State != h.st {
			return page, fmt.Errorf("boltstore: list: %w", damaged("index says task %s is %s, the task says %s", id, h.st, t.State))
		}
		page = append(page, t)
		h.id = nil
		if k, _ := step(h.c, reverse); k != nil && bytes.HasPrefix(k, h.prefix) {
			h.id = k[len(h.prefix):]
		}
	}
	return page, nil
}

// seekAfter positions c on the first key with prefix after prefix+after
// (the last before it, with reverse; the first or last of the prefix when
// after is empty) and returns it. The key may lack the prefix: the
// caller checks.
func seekAfter(c *bbolt.Cursor, prefix []byte, after string, reverse bool) ([]byte, []byte) {
	if !reverse {
		if after == "" {
			if prefix == nil {
				return c.First()
			}
			return c.Seek(prefix)
		}
		key := append(slices.Clip(prefix), after...)
		k, v := c.Seek(key)
		if bytes.Equal(k, key) {
			return c.Next()
		}
		return k, v
	}
	var key []byte
	switch {
	case after != "":
		key = append(slices.Clip(prefix), after...)
	case prefix == nil:
		return c.Last()
	default:
		// The first key past the prefix: the separator 0x00 raised by one.
		key = append(slices.Clone(prefix[:len(prefix)-1]), 1)
	}
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// The tasks in the history bucket: each follows its records (see
// taskKey). Reading them in order steps over the records: one key at a
// time over a few, with a seek past a long history.

// maxRecordSteps is how many records nextTask steps over one by one
// before it seeks past the rest of the history.
const maxRecordSteps = 8

// seekTaskAfter positions c on the first task whose id sorts after after
// (the last before it, with reverse; the first or last task when after
// is empty) and returns its key and value, or nil at the end.
func seekTaskAfter(c *bbolt.Cursor, after string, reverse bool) ([]byte, []byte, error) {
	if i := strings.IndexByte(after, 0); i >= 0 {
		// No id holds a 0x00: the ids after such a string are those after
		// its part before the 0x00, and the ids before it are those up to
		// that part, that is, before the part and 0x01.
		if after = after[:i]; reverse {
			after += "\x01"
		}
	}
	var k, v []byte
	switch {
	case after == "" && !reverse:
		k, v = c.First()
	case after == "":
		k, v = c.Last()
	case !reverse:
		key := taskKey(after)
		if k, v = c.Seek(key); bytes.Equal(k, key) {
			k, v = c.Next()
		}
	default:
		// The last key before after's own keys (its records, then its
		// task): a task key sorts before taskKey(after) exactly when its
		// id sorts before after.
		if k, _ = c.Seek(historyPrefix(after)); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	}
	return toTask(c, nil, k, v, reverse)
}

// nextTask moves c from the task at key from to the next one (the one
// before, with reverse) and returns its key and value, or nil at the end.
func nextTask(c *bbolt.Cursor, from []byte, reverse bool) ([]byte, []byte, error) {
	k, v := step(c, reverse)
	return toTask(c, from, k, v, reverse)
}

// toTask moves c from the key k, which it reached from the key from (nil:
// a seek), on to the first task key at or after k (at or before it, with
// reverse). Keys of neither kind are damage from outside this program;
// they are passed over. Every key must move on from the one before: a
// damaged page can make a cursor go back (or round in a circle), and a
// scan must end, so that is reported as damage.
func toTask(c *bbolt.Cursor, from, k, v []byte, reverse bool) ([]byte, []byte, error) {
	for steps := 0; k != nil; steps++ {
		if from != nil {
			if n := bytes.Compare(k, from); (!reverse && n <= 0) || (reverse && n >= 0) {
				return nil, nil, damaged("the history bucket's keys are out of order near %x", from)
			}
		}
		id, task, ok := keyKind(k)
		if ok && task {
			return k, v, nil
		}
		from = k
		if !ok || steps < maxRecordSteps {
			k, v = step(c, reverse)
			continue
		}
		// A long history: seek past the rest of it. Forward, its task
		// key is the next key; backward, the key before its first
		// record is the task before.
		steps = 0
		if !reverse {
			k, v = c.Seek(taskKey(string(id)))
		} else if k, _ = c.Seek(historyPrefix(string(id))); k != nil {
			k, v = c.Prev()
		}
	}
	return nil, nil, nil
}

// step moves c one key on, backwards with reverse.
func step(c *bbolt.Cursor, reverse bool) ([]byte, []byte) {
	if reverse {
		return c.Prev()
	}
	return c.Next()
}

// Due returns active tasks without Params in (NextAt, ID) order, from the
// due index, in one read transaction; see persist.Store.
func (s *Store) Due(ctx context.Context, opts persist.DueOptions) ([]*persist.Task, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("boltstore: due: limit %d is negative", opts.Limit)
	}
	var out []*persist.Task
	err := s.view(ctx, "due", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		c := b.due.Cursor()
		var k []byte
		if opts.After == (persist.DueCursor{}) {
			k, _ = c.First()
		} else {
			key := dueKey(opts.After.At, opts.After.ID)
			if k, _ = c.Seek(key); bytes.Equal(k, key) {
				k, _ = c.Next()
			}
		}
		var until []byte // compared with the time part of each key
		if !opts.Until.IsZero() {
			until = timeKey(opts.Until)
		}
		var prev []byte // the last key read
		for ; k != nil; k, _ = c.Next() {
			if opts.Limit > 0 && len(out) == opts.Limit {
				break
			}
			if prev != nil && bytes.Compare(k, prev) <= 0 {
				// A damaged page can send a cursor back: end, not loop.
				return fmt.Errorf("boltstore: due: %w", damaged("the due index's keys are out of order near %x", prev))
			}
			prev = k
			if until != nil && bytes.Compare(k[:min(len(k), timeKeyLen)], until) > 0 {
				break
			}
			at, id, err := splitDueKey(k)
			if err != nil {
				return fmt.Errorf("boltstore: due: %w", err)
			}
			t, err := readTask(b, id)
			switch {
			case errors.Is(err, persist.ErrNotFound):
				return fmt.Errorf("boltstore: due: %w", damaged("the index names task %q, which is not stored", id))
			case err != nil:
				return fmt.Errorf("boltstore: due: the index names a task that cannot be read: %w", err)
			case !t.State.Active() || !t.DueAt.Equal(at):
				return fmt.Errorf("boltstore: due: %w", damaged("the index has task %s due at %v, the task is %s held at %v",
					id, at, t.State, t.DueAt))
			}
			out = append(out, t)
		}
		if len(out) >= scanPage {
			dropMapped(tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastSubmit returns the latest At of the committed submit_sending records
// (zero when there is none); see persist.Store.
func (s *Store) LastSubmit(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.view(ctx, "last submit", func(tx *bbolt.Tx) error {
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		v := b.meta.Get(keyLastSubmit)
		if v == nil {
			return nil
		}
		var ok bool
		if at, ok = decodeTime(v); !ok || len(v) != timeKeyLen {
			return fmt.Errorf("boltstore: last submit: %w", damaged("meta last_submit is %x", v))
		}
		return nil
	})
	return at, err
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
// reading pages of scanPage records in read transactions of their own;
// see persist.Store.
func (s *Store) ScanHistory(ctx context.Context, id string, fn func(persist.Record) error) error {
	return s.scanHistory(ctx, "history "+id, id, fn)
}

func (s *Store) scanHistory(ctx context.Context, op, id string, fn func(persist.Record) error) error {
	if strings.IndexByte(id, 0) >= 0 {
		// No id holds a 0x00: the prefix id+0x00 could match the records
		// of the id before the 0x00.
		return fmt.Errorf("boltstore: %s: %w", op, persist.ErrNotFound)
	}
	prefix := historyPrefix(id)
	var last uint64 // the seq of the last record read
	page := make([]persist.Record, 0, min(scanPage, 64))
	for {
		page = page[:0]
		err := s.view(ctx, op, func(tx *bbolt.Tx) error {
			b, err := bucketsOf(tx)
			if err != nil {
				return err
			}
			c := b.history.Cursor()
			for k, v := c.Seek(historyKey(id, last+1)); k != nil && bytes.HasPrefix(k, prefix) && len(page) < scanPage; k, v = c.Next() {
				r, err := decodeRecord(v)
				if err != nil {
					return fmt.Errorf("boltstore: %s: %w", op, err)
				}
				want := last + uint64(len(page)) + 1
				if r.Seq != want || !bytes.Equal(k, historyKey(id, r.Seq)) {
					return fmt.Errorf("boltstore: %s: %w", op, damaged("record %d is stored under key %x, where record %d belongs", r.Seq, k, want))
				}
				page = append(page, r)
			}
			if last == 0 && len(page) == 0 {
				// Every task has its first record: no records, no task.
				return fmt.Errorf("boltstore: %s: %w", op, persist.ErrNotFound)
			}
			if len(page) == scanPage {
				dropMapped(tx) // a long history: see Scan
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		last = page[len(page)-1].Seq
	}
}
