package boltstore_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestDueFollowsMoves: Due returns the exact (DueAt, ID) order, whatever
// the page size, cursor or Until, across ties, the zero NextAt and a
// NextAt in year 1, while tasks move (within persist.DueSlack, where they
// keep their place, and further), settle and come back, in a store whose
// tasks share a bucket with their records. A model (each task's place by
// the rule Apply documents, the tasks sorted by it) is the reference.
func TestDueFollowsMoves(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "due.db"), &boltstore.Options{NoSync: true})
	rng := rand.New(rand.NewPCG(16, 3))
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	// NextAts over four minutes, on a coarse grid so that ties happen,
	// a few zero (due at once), one in the first minute of year 1.
	nextAt := func() time.Time {
		switch rng.IntN(10) {
		case 0:
			return time.Time{}
		case 1:
			return time.Time{}.Add(time.Duration(rng.IntN(3)+1) * time.Second)
		}
		return base.Add(time.Duration(rng.IntN(4*60*4)) * 250 * time.Millisecond)
	}
	const n = 120
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Method: "turnstile", NextAt: nextAt()}
	}
	require.NoError(t, s.Create(ctx, tasks...))
	// The model: where the index holds each active task.
	place := map[string]time.Time{}
	for _, task := range tasks {
		place[task.ID] = task.NextAt
	}
	kept := 0 // moves that kept their place although NextAt changed
	move := func(task *persist.Task, ev transitions.Event, to states.State, next time.Time) {
		t.Helper()
		from := task.State
		task.State, task.NextAt = to, next
		require.NoError(t, s.Apply(ctx, task, &persist.Record{From: from, Event: ev, To: to}))
		old, had := place[task.ID]
		switch {
		case !to.Active():
			delete(place, task.ID)
		case had && !old.IsZero() && !next.Before(old) && next.Sub(old) <= persist.DueSlack:
			if !next.Equal(old) {
				kept++
			}
		default:
			place[task.ID] = next
		}
	}

	check := func(round int) {
		t.Helper()
		var want []*persist.Task
		for _, task := range tasks {
			if task.State.Active() {
				want = append(want, task)
			}
		}
		slices.SortFunc(want, func(a, b *persist.Task) int {
			return cmp.Or(place[a.ID].Compare(place[b.ID]), strings.Compare(a.ID, b.ID))
		})
		ids := func(ts []*persist.Task) []string {
			out := []string{}
			for _, t := range ts {
				out = append(out, t.ID)
			}
			return out
		}
		got, err := s.Due(ctx, persist.DueOptions{})
		require.NoError(t, err)
		require.Equal(t, ids(want), ids(got), "round %d: all", round)
		for i, task := range got {
			assert.True(t, task.NextAt.Equal(want[i].NextAt), "round %d: NextAt of %s", round, task.ID)
			assert.True(t, task.DueAt.Equal(place[task.ID]), "round %d: DueAt of %s: %v, want %v",
				round, task.ID, task.DueAt, place[task.ID])
			assert.False(t, task.DueAt.After(task.NextAt), "round %d: %s held after its NextAt", round, task.ID)
			assert.LessOrEqual(t, task.NextAt.Sub(task.DueAt), persist.DueSlack, "round %d: %s", round, task.ID)
		}
		// Pages of every size, each from the last task of the one before.
		for _, limit := range []int{1, 2, 3, 7, 50} {
			var paged []*persist.Task
			var after persist.DueCursor
			for {
				page, err := s.Due(ctx, persist.DueOptions{After: after, Limit: limit})
				require.NoError(t, err)
				require.LessOrEqual(t, len(page), limit)
				paged = append(paged, page...)
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				after = persist.DueCursor{At: last.DueAt, ID: last.ID}
			}
			require.Equal(t, ids(want), ids(paged), "round %d: pages of %d", round, limit)
		}
		// Until and cursors at instants no task has, in every minute.
		for range 20 {
			until := base.Add(time.Duration(rng.IntN(5*60*1000)-30_000) * time.Millisecond)
			after := persist.DueCursor{At: base.Add(time.Duration(rng.IntN(4*60*1000)) * time.Millisecond), ID: persist.NewID()}
			if rng.IntN(4) == 0 {
				after.At = time.Time{}
			}
			var wantU, wantA []*persist.Task
			for _, task := range want {
				at := place[task.ID]
				if !at.After(until) {
					wantU = append(wantU, task)
				}
				if c := at.Compare(after.At); c > 0 || (c == 0 && task.ID > after.ID) {
					if !at.After(until) {
						wantA = append(wantA, task)
					}
				}
			}
			got, err := s.Due(ctx, persist.DueOptions{Until: until})
			require.NoError(t, err)
			require.Equal(t, ids(wantU), ids(got), "round %d: until %v", round, until)
			got, err = s.Due(ctx, persist.DueOptions{After: after, Until: until, Limit: 5})
			require.NoError(t, err)
			require.Equal(t, ids(wantA[:min(5, len(wantA))]), ids(got), "round %d: after %v until %v", round, after.At, until)
		}
	}
	check(0)
	// Rounds of transitions: polls within a minute and across, backoffs,
	// tasks that settle and come back.
	for round := 1; round <= 6; round++ {
		for _, task := range tasks {
			switch task.State {
			case states.Submitting:
				switch rng.IntN(3) {
				case 0:
					move(task, transitions.SubmitAccepted, states.Polling, nextAt())
				case 1:
					move(task, transitions.TransientError, states.Backoff, nextAt())
				}
			case states.Backoff:
				move(task, transitions.SubmitSending, states.Submitting, task.NextAt)
			case states.Polling:
				switch rng.IntN(4) {
				case 0:
					move(task, transitions.NotReady, states.Polling, task.NextAt.Add(time.Duration(rng.IntN(20))*time.Second))
				case 1:
					move(task, transitions.AccountError, states.NeedsAccountFix, time.Time{})
				default:
					move(task, transitions.NotReady, states.Polling, nextAt())
				}
			case states.NeedsAccountFix:
				move(task, transitions.AccountFixed, states.Submitting, nextAt())
			}
		}
		check(round)
	}
	assert.Greater(t, kept, 20, "moves within DueSlack that kept their place")
}

// TestScanPastRecords: tasks live among their records in one bucket, so
// Scan and List step (or seek) over each task's history. Every order,
// cursor and page size returns exactly the tasks, whatever their history
// length and however their ids nest (an id that is another's prefix, ids
// holding 0x01 and 0x02 bytes, the bytes the layout puts after an id).
func TestScanPastRecords(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "scan.db"), &boltstore.Options{NoSync: true})
	ids := []string{"a", "a\x01", "a\x01b", "a\x01\x01", "a\x02", "ab", "b", "b\xff", "\x01", "\xff\xff",
		"01974a1c-0001-7000-8000-000000000001", "01974a1c-0001-7000-8000-0000000000010"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, id := range ids {
		task := &persist.Task{ID: id, Method: "turnstile"}
		require.NoError(t, s.Create(ctx, task))
		// Histories of 1 to 40 records: some stepped over, some sought past.
		for range []int{0, 30, 2, 11, 39, 5, 9, 0, 17, 3, 25, 8}[i] + rng.IntN(2) {
			task.NextAt = task.NextAt.Add(time.Second)
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting}))
		}
	}
	sorted := slices.Sorted(slices.Values(ids))
	reversed := slices.Clone(sorted)
	slices.Reverse(reversed)
	collect := func(opts persist.ListOptions) []string {
		t.Helper()
		out := []string{}
		require.NoError(t, s.Scan(ctx, opts, func(task *persist.Task) error {
			out = append(out, task.ID)
			return nil
		}))
		return out
	}
	assert.Equal(t, sorted, collect(persist.ListOptions{}))
	assert.Equal(t, reversed, collect(persist.ListOptions{Reverse: true}))
	// After every id, and after strings that are no id.
	for _, after := range append(slices.Clone(ids), "", "a\x00", "a\x01a", "aa", "c", "\x00", "a\x01\x01\x01") {
		var want, wantRev []string
		for _, id := range sorted {
			if after == "" || id > after {
				want = append(want, id)
			}
		}
		for _, id := range reversed {
			if after == "" || id < after {
				wantRev = append(wantRev, id)
			}
		}
		if want == nil {
			want = []string{}
		}
		if wantRev == nil {
			wantRev = []string{}
		}
		assert.Equal(t, want, collect(persist.ListOptions{After: after}), "after %q", after)
		assert.Equal(t, wantRev, collect(persist.ListOptions{After: after, Reverse: true}), "before %q", after)
		for _, limit := range []int{1, 3} {
			list, err := s.List(ctx, persist.ListOptions{After: after, Limit: limit})
			require.NoError(t, err)
			got := []string{}
			for _, task := range list {
				got = append(got, task.ID)
			}
			assert.Equal(t, want[:min(limit, len(want))], got, "after %q, limit %d", after, limit)
		}
	}
	for _, id := range ids {
		task, err := s.Get(ctx, id)
		require.NoError(t, err)
		hist, err := s.History(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, task.Seq, uint64(len(hist)), "%q", id)
	}
}

// TestDamagedPagesEndScans: one flipped byte at a time in every page of a
// file whose tasks have long histories (so Scan seeks past them) and
// short ones; Scan, in both orders, Due and History must end, with the
// tasks or an error, never loop or pass a task twice: a damaged page can
// send a cursor back.
func TestDamagedPagesEndScans(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := open(t, good, &boltstore.Options{NoSync: true})
	var ids []string
	for i := range 40 {
		task := &persist.Task{ID: persist.NewID(), Method: "turnstile"}
		require.NoError(t, s.Create(ctx, task))
		ids = append(ids, task.ID)
		for range []int{1, 3, 12, 25}[i%4] {
			task.NextAt = task.NextAt.Add(time.Second)
			require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitSending, To: states.Submitting}))
		}
	}
	require.NoError(t, s.Close())
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	const page = 4096
	used := len(bytes.TrimRight(data, "\x00"))
	calls := func(s *boltstore.Store) {
		for _, reverse := range []bool{false, true} {
			n := 0
			_ = s.Scan(ctx, persist.ListOptions{Reverse: reverse}, func(*persist.Task) error {
				if n++; n > len(ids) {
					return errors.New("more tasks than the file holds")
				}
				return nil
			})
			require.LessOrEqual(t, n, len(ids), "Scan (reverse %v) passed a task twice", reverse)
		}
		due, _ := s.Due(ctx, persist.DueOptions{})
		require.LessOrEqual(t, len(due), len(ids))
		for _, id := range ids[:4] {
			_, _ = s.History(ctx, id)
		}
	}
	for p := 2; p*page < used; p++ {
		for _, off := range []int{8, 16, 24, 40, 300, 1000, 2000, 3000} {
			bad := bytes.Clone(data)
			bad[p*page+off] ^= 0xff
			path := filepath.Join(dir, "bad.db")
			require.NoError(t, os.WriteFile(path, bad, 0o600))
			s, err := boltstore.Open(path, &boltstore.Options{NoSync: true, LockTimeout: 100 * time.Millisecond})
			if err != nil {
				continue
			}
			// A read that loops without passing tasks fails the test by
			// its timeout; one that passes them again, by calls.
			calls(s)
			require.NoError(t, s.Close())
		}
	}
}
