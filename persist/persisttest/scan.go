package persisttest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// moveAll moves every task on ev to to, concurrently (so that stores
// that group commits share them).
func moveAll(t *testing.T, s persist.Store, tasks []*persist.Task, ev transitions.Event, to states.State) {
	t.Helper()
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				_, errs[i] = tryMove(s, tasks[i], ev, to, nil)
			}
		})
	}
	for i := range tasks {
		work <- i
	}
	close(work)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
}

// scanIDs returns the ids Scan passes for opts, failing on an error.
func scanIDs(t *testing.T, s persist.Store, opts persist.ListOptions) []string {
	t.Helper()
	var ids []string
	require.NoError(t, s.Scan(context.Background(), opts, func(task *persist.Task) error {
		assert.Nil(t, task.Params, "Scan passed params")
		ids = append(ids, task.ID)
		return nil
	}))
	return ids
}

func testScan(t *testing.T, s persist.Store) {
	ctx := context.Background()
	tasks := make([]*persist.Task, 12)
	for i := range tasks {
		tasks[i] = newTask("s"+strconv.Itoa(i), map[string]string{"i": strconv.Itoa(i)})
	}
	require.NoError(t, s.Create(ctx, tasks...))
	for _, i := range []int{1, 2, 5, 9, 10} {
		move(t, s, tasks[i], transitions.SubmitAccepted, states.Polling, nil)
	}
	for _, i := range []int{2, 9} {
		move(t, s, tasks[i], transitions.Solved, states.Done, nil)
	}
	pick := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, tasks[i].ID)
		}
		return out
	}
	polling, done := []states.State{states.Polling}, []states.State{states.Done, states.Polling}
	tests := []struct {
		name string
		opts persist.ListOptions
		want []string
	}{
		{"all", persist.ListOptions{}, pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)},
		{"reverse", persist.ListOptions{Reverse: true}, pick(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"after", persist.ListOptions{After: tasks[8].ID}, pick(9, 10, 11)},
		{"after, limit", persist.ListOptions{After: tasks[3].ID, Limit: 2}, pick(4, 5)},
		{"before", persist.ListOptions{After: tasks[3].ID, Reverse: true}, pick(2, 1, 0)},
		{"reverse, limit", persist.ListOptions{Reverse: true, Limit: 4}, pick(11, 10, 9, 8)},
		{"after the last", persist.ListOptions{After: tasks[11].ID}, pick()},
		{"before the first", persist.ListOptions{After: tasks[0].ID, Reverse: true}, pick()},
		{"after an id that is not stored", persist.ListOptions{After: tasks[4].ID + "-"}, pick(5, 6, 7, 8, 9, 10, 11)},
		{"polling", persist.ListOptions{States: polling}, pick(1, 5, 10)},
		{"polling, after", persist.ListOptions{States: polling, After: tasks[1].ID}, pick(5, 10)},
		{"polling, reverse", persist.ListOptions{States: polling, Reverse: true}, pick(10, 5, 1)},
		{"done and polling", persist.ListOptions{States: done}, pick(1, 2, 5, 9, 10)},
		{"done and polling, reverse", persist.ListOptions{States: done, Reverse: true}, pick(10, 9, 5, 2, 1)},
		{"done and polling, before", persist.ListOptions{States: done, Reverse: true, After: tasks[9].ID}, pick(5, 2, 1)},
		{"done and polling, after, limit", persist.ListOptions{States: done, After: tasks[1].ID, Limit: 3}, pick(2, 5, 9)},
		{"twice the same state", persist.ListOptions{States: []states.State{states.Done, states.Done}}, pick(2, 9)},
		{"none", persist.ListOptions{States: []states.State{states.NeedsAccountFix}}, pick()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, append([]string{}, scanIDs(t, s, tt.opts)...))
			list, err := s.List(ctx, tt.opts)
			require.NoError(t, err)
			ids := []string{}
			for _, task := range list {
				ids = append(ids, task.ID)
				i := slices.IndexFunc(tasks, func(x *persist.Task) bool { return x.ID == task.ID })
				sameTask(t, tasks[i], task, false)
			}
			assert.Equal(t, tt.want, ids, "List")
		})
	}

	// fn's error stops the scan and comes back as it is.
	stop := errors.New("enough")
	n := 0
	err := s.Scan(ctx, persist.ListOptions{}, func(*persist.Task) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	require.Equal(t, stop, err)
	assert.Equal(t, 3, n)

	for _, opts := range []persist.ListOptions{{Limit: -1}, {States: []states.State{"Sleeping"}}} {
		assert.Error(t, s.Scan(ctx, opts, func(*persist.Task) error { return nil }), "%+v", opts)
	}
}

// pageCrossing is more tasks than a store reads in one page (1,000 in
// both stores of this module), so that scans cross pages.
const pageCrossing = 2345

func testScanPages(t *testing.T, s persist.Store) {
	ctx := context.Background()
	tasks := make([]*persist.Task, pageCrossing)
	for i := range tasks {
		tasks[i] = newTask("", nil)
	}
	require.NoError(t, s.Create(ctx, tasks...))
	// Every third task polls, so a state's pages are not the id pages.
	var polling []string
	var toPoll []*persist.Task
	for i, task := range tasks {
		if i%3 == 0 {
			toPoll = append(toPoll, task)
			polling = append(polling, task.ID)
		}
	}
	moveAll(t, s, toPoll, transitions.SubmitAccepted, states.Polling)
	all := make([]string, len(tasks))
	for i, task := range tasks {
		all[i] = task.ID
	}
	assert.Equal(t, all, scanIDs(t, s, persist.ListOptions{}))
	assert.Equal(t, polling, scanIDs(t, s, persist.ListOptions{States: []states.State{states.Polling}}))
	assert.Equal(t, all, scanIDs(t, s, persist.ListOptions{States: []states.State{states.Polling, states.Submitting}}))
	rev := slices.Clone(all)
	slices.Reverse(rev)
	assert.Equal(t, rev, scanIDs(t, s, persist.ListOptions{Reverse: true}))
	assert.Equal(t, all[:1500], scanIDs(t, s, persist.ListOptions{Limit: 1500}))

	// Paging by hand: the last id of a page starts the next.
	var paged []string
	after := ""
	for {
		page, err := s.List(ctx, persist.ListOptions{After: after, Limit: 700, Reverse: true})
		require.NoError(t, err)
		for _, task := range page {
			paged = append(paged, task.ID)
		}
		if len(page) < 700 {
			break
		}
		after = page[len(page)-1].ID
	}
	assert.Equal(t, rev, paged)
}

func testScanMovingTasks(t *testing.T, s persist.Store) {
	ctx := context.Background()
	tasks := make([]*persist.Task, pageCrossing)
	for i := range tasks {
		tasks[i] = newTask("", nil)
	}
	require.NoError(t, s.Create(ctx, tasks...))
	// Once the scan has begun, every task moves from one selected state to
	// the other, and a few new ones arrive: each task is still passed at
	// most once, in id order, and every task that existed throughout is
	// passed.
	var ids []string
	var late []*persist.Task
	err := s.Scan(ctx, persist.ListOptions{States: []states.State{states.Submitting, states.Polling}}, func(task *persist.Task) error {
		if len(ids) == 0 {
			moveAll(t, s, tasks, transitions.SubmitAccepted, states.Polling)
			for range 3 {
				late = append(late, newTask("", nil))
			}
			require.NoError(t, s.Create(ctx, late...))
		}
		ids = append(ids, task.ID)
		return nil
	})
	require.NoError(t, err)
	assert.True(t, slices.IsSorted(ids), "ids out of order")
	assert.Len(t, slices.Compact(slices.Clone(ids)), len(ids), "a task was passed twice")
	for _, task := range tasks {
		assert.Contains(t, ids, task.ID)
	}
	assert.LessOrEqual(t, len(ids), len(tasks)+len(late))
}

func testScanHistory(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("h", nil)
	require.NoError(t, s.Create(ctx, task))
	move(t, s, task, transitions.SubmitAccepted, states.Polling, nil)
	const polls = 1050 // more than a page
	for i := range polls {
		move(t, s, task, transitions.NotReady, states.Polling, func(c *persist.Task) { c.Polls = i + 1 })
	}
	var seqs []uint64
	require.NoError(t, s.ScanHistory(ctx, task.ID, func(r persist.Record) error {
		seqs = append(seqs, r.Seq)
		return nil
	}))
	require.Len(t, seqs, polls+2)
	for i, seq := range seqs {
		require.Equal(t, uint64(i+1), seq)
	}
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.Len(t, hist, polls+2)
	assert.Equal(t, transitions.Created, hist[0].Event)
	assert.Equal(t, transitions.NotReady, hist[polls+1].Event)

	stop := errors.New("stop")
	n := 0
	require.Equal(t, stop, s.ScanHistory(ctx, task.ID, func(persist.Record) error {
		if n++; n == 1001 {
			return stop
		}
		return nil
	}))
	assert.Equal(t, 1001, n)

	called := false
	err = s.ScanHistory(ctx, persist.NewID(), func(persist.Record) error { called = true; return nil })
	require.ErrorIs(t, err, persist.ErrNotFound)
	assert.False(t, called)
}

// dueIDs returns the ids Due returns for opts, and checks each task's
// DueAt: no later than its NextAt, at most persist.DueSlack earlier.
func dueIDs(t *testing.T, s persist.Store, opts persist.DueOptions) []string {
	t.Helper()
	got, err := s.Due(context.Background(), opts)
	require.NoError(t, err)
	ids := []string{}
	for _, task := range got {
		assert.Nil(t, task.Params, "Due returned params")
		assert.True(t, task.State.Active(), "Due returned a %s task", task.State)
		assert.False(t, task.DueAt.After(task.NextAt), "task %s held at %v, after its NextAt %v", task.ID, task.DueAt, task.NextAt)
		assert.LessOrEqual(t, task.NextAt.Sub(task.DueAt), persist.DueSlack,
			"task %s held at %v, more than DueSlack before its NextAt %v", task.ID, task.DueAt, task.NextAt)
		ids = append(ids, task.ID)
	}
	return ids
}

func testDue(t *testing.T, s persist.Store) {
	ctx := context.Background()
	zone := time.FixedZone("UTC-07", -7*3600)
	at := func(sec, nsec int) time.Time { return base.Add(time.Duration(sec)*time.Second + time.Duration(nsec)) }
	// NextAt of each task, and its state after Create.
	specs := []struct {
		next time.Time
		to   states.State
	}{
		0: {at(10, 0), states.Submitting},
		1: {at(5, 0), states.Polling},
		2: {at(5, 0), states.Backoff},               // the same instant as 1: id order
		3: {time.Time{}, states.Submitting},         // zero: first
		4: {at(5, 1).In(zone), states.Resubmitting}, // a nanosecond later, another zone
		5: {at(5, 1000), states.Polling},            // a microsecond later
		6: {at(1, 0), states.Done},                  // settled: never due
		7: {at(2, 0), states.NeedsAccountFix},       // parked: never due
		8: {at(-3600, 0), states.Submitting},        // overdue
		9: {at(20, 0), states.Polling},
	}
	events := map[states.State]transitions.Event{
		states.Polling: transitions.SubmitAccepted, states.Backoff: transitions.TransientError,
		states.Done: transitions.Solved, states.NeedsAccountFix: transitions.AccountError,
	}
	tasks := make([]*persist.Task, len(specs))
	for i, sp := range specs {
		tasks[i] = newTask("", map[string]string{"i": strconv.Itoa(i)})
		tasks[i].NextAt = sp.next
	}
	require.NoError(t, s.Create(ctx, tasks...))
	for i, sp := range specs {
		switch sp.to {
		case states.Submitting:
		case states.Resubmitting:
			move(t, s, tasks[i], transitions.SubmitAccepted, states.Polling, nil)
			move(t, s, tasks[i], transitions.ResubmitNeeded, states.Resubmitting, nil)
		case states.Done:
			move(t, s, tasks[i], transitions.SubmitAccepted, states.Polling, nil)
			move(t, s, tasks[i], events[sp.to], sp.to, nil)
		default:
			move(t, s, tasks[i], events[sp.to], sp.to, nil)
		}
	}
	pick := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, tasks[i].ID)
		}
		return out
	}
	// Tasks 1 and 2 share a NextAt; their ids decide.
	order := pick(3, 8, 1, 2, 4, 5, 0, 9)
	cur := func(i int) persist.DueCursor { return persist.DueCursor{At: specs[i].next, ID: tasks[i].ID} }
	tests := []struct {
		name string
		opts persist.DueOptions
		want []string
	}{
		{"all", persist.DueOptions{}, order},
		{"limit", persist.DueOptions{Limit: 3}, order[:3]},
		{"after the zero time", persist.DueOptions{After: cur(3)}, order[1:]},
		{"after a tie", persist.DueOptions{After: cur(1)}, order[3:]},
		{"after, limit", persist.DueOptions{After: cur(8), Limit: 2}, pick(1, 2)},
		{"after an instant that is no task's", persist.DueOptions{After: persist.DueCursor{At: at(7, 0)}}, pick(0, 9)},
		{"after the last", persist.DueOptions{After: cur(9)}, pick()},
		{"until, equal included", persist.DueOptions{Until: at(5, 1)}, pick(3, 8, 1, 2, 4)},
		{"until, another zone", persist.DueOptions{Until: at(5, 0).In(zone)}, pick(3, 8, 1, 2)},
		{"until before all but the zero", persist.DueOptions{Until: at(-7200, 0)}, pick(3)},
		{"after and until", persist.DueOptions{After: cur(2), Until: at(10, 0)}, pick(4, 5, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, dueIDs(t, s, tt.opts))
		})
	}
	// Pages of two, each after the last task of the one before.
	var paged []string
	var after persist.DueCursor
	for {
		page, err := s.Due(ctx, persist.DueOptions{After: after, Limit: 2})
		require.NoError(t, err)
		for _, task := range page {
			paged = append(paged, task.ID)
			i := slices.IndexFunc(tasks, func(x *persist.Task) bool { return x.ID == task.ID })
			sameTask(t, tasks[i], task, false)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		after = persist.DueCursor{At: last.DueAt, ID: last.ID}
	}
	assert.Equal(t, order, paged)
	_, err := s.Due(ctx, persist.DueOptions{Limit: -1})
	assert.Error(t, err)
}

func testDueFollowsApply(t *testing.T, s persist.Store) {
	ctx := context.Background()
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	a, b, c := newTask("a", nil), newTask("b", nil), newTask("c", nil)
	a.NextAt, b.NextAt, c.NextAt = at(1), at(2), at(3)
	require.NoError(t, s.Create(ctx, a, b, c))
	ids := func() []string { return dueIDs(t, s, persist.DueOptions{}) }
	assert.Equal(t, []string{a.ID, b.ID, c.ID}, ids())
	slack := int(persist.DueSlack / time.Second)

	// A NextAt more than DueSlack later moves the task; the same NextAt
	// keeps its place.
	move(t, s, a, transitions.SubmitAccepted, states.Polling, func(x *persist.Task) { x.NextAt = at(10 + slack) })
	assert.Equal(t, []string{b.ID, c.ID, a.ID}, ids())
	move(t, s, b, transitions.SubmitSending, states.Submitting, nil)
	assert.Equal(t, []string{b.ID, c.ID, a.ID}, ids())
	// A NextAt at most DueSlack later may keep the place (dueIDs checks
	// that DueAt stays within DueSlack of it), an earlier one moves it.
	move(t, s, a, transitions.NotReady, states.Polling, func(x *persist.Task) { x.NextAt = at(10 + 2*slack) })
	assert.Equal(t, []string{b.ID, c.ID, a.ID}, ids())
	move(t, s, a, transitions.NotReady, states.Polling, func(x *persist.Task) { x.NextAt = at(2) })
	assert.Equal(t, []string{a.ID, b.ID, c.ID}, ids(), "a at 2 ties with b at 2: ids decide")
	// A task whose place lags still comes out of Until by its place, and
	// the first of its order: c moves from 3 to 3 + DueSlack.
	move(t, s, c, transitions.SubmitAccepted, states.Polling, func(x *persist.Task) { x.NextAt = at(3 + slack) })
	got := dueIDs(t, s, persist.DueOptions{Until: at(3)})
	assert.Subset(t, []string{a.ID, b.ID, c.ID}, got)
	assert.Subset(t, got, []string{a.ID, b.ID}, "every task due by Until is returned")
	move(t, s, c, transitions.NotReady, states.Polling, func(x *persist.Task) { x.NextAt = at(3) })
	assert.Equal(t, []string{a.ID, b.ID, c.ID}, ids())
	// Settling leaves the index; account_fixed brings the task back.
	move(t, s, a, transitions.Solved, states.Done, func(x *persist.Task) { x.NextAt = time.Time{} })
	move(t, s, b, transitions.AccountError, states.NeedsAccountFix, nil)
	assert.Equal(t, []string{c.ID}, ids())
	move(t, s, b, transitions.AccountFixed, states.Submitting, func(x *persist.Task) { x.NextAt = at(4) })
	assert.Equal(t, []string{c.ID, b.ID}, ids())
	// A conflicting Apply changes nothing.
	stale := c.Clone()
	move(t, s, c, transitions.SubmitSending, states.Submitting, func(x *persist.Task) { x.NextAt = at(5 + slack) })
	stale.State, stale.NextAt = states.Polling, at(0)
	require.ErrorIs(t, s.Apply(ctx, stale, &persist.Record{From: states.Polling, Event: transitions.NotReady,
		To: states.Polling}), persist.ErrConflict)
	got = dueIDs(t, s, persist.DueOptions{})
	assert.Equal(t, []string{b.ID, c.ID}, got)
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	sameTask(t, b, due[0], false)
	sameTask(t, c, due[1], false)
	// Pruning settled tasks leaves the index as it is.
	_, err = s.Prune(ctx, base.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, []string{b.ID, c.ID}, dueIDs(t, s, persist.DueOptions{}))
}

func testLastSubmit(t *testing.T, s persist.Store) {
	ctx := context.Background()
	last := func() time.Time {
		t.Helper()
		at, err := s.LastSubmit(ctx)
		require.NoError(t, err)
		return at
	}
	assert.True(t, last().IsZero(), "LastSubmit of an empty store")
	a, b := newTask("a", nil), newTask("b", nil)
	require.NoError(t, s.Create(ctx, a, b))
	assert.True(t, last().IsZero(), "Create submits nothing")

	sending := func(task *persist.Task, at time.Time) {
		t.Helper()
		task.State, task.Updated = states.Submitting, at
		require.NoError(t, s.Apply(ctx, task, &persist.Record{At: at, From: states.Submitting,
			Event: transitions.SubmitSending, To: states.Submitting}))
	}
	t1 := base.Add(10*time.Second + 7)
	sending(a, t1)
	assert.True(t, last().Equal(t1), "want %v, got %v", t1, last())
	sending(b, base.Add(5*time.Second)) // earlier: LastSubmit stays
	assert.True(t, last().Equal(t1))
	move(t, s, a, transitions.SubmitAccepted, states.Polling, func(x *persist.Task) { x.Updated = base.Add(time.Hour) })
	assert.True(t, last().Equal(t1), "only submit_sending records count")
	move(t, s, a, transitions.Solved, states.Done, nil)
	t2 := t1.Add(time.Second)
	sending(b, t2)
	assert.True(t, last().Equal(t2))
	move(t, s, b, transitions.PermanentError, states.Failed, nil)
	// Pruning every task that submitted keeps it.
	n, err := s.Prune(ctx, base.Add(24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.True(t, last().Equal(t2), "want %v, got %v", t2, last())
}

func testIntent(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("i", nil)
	task.Intent = true // Create ignores it
	require.NoError(t, s.Create(ctx, task))
	assert.False(t, task.Intent)
	stored := func() bool {
		t.Helper()
		got, err := s.Get(ctx, task.ID)
		require.NoError(t, err)
		list, err := s.List(ctx, persist.ListOptions{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, got.Intent, list[0].Intent, "Get and List disagree")
		due, err := s.Due(ctx, persist.DueOptions{})
		require.NoError(t, err)
		if len(due) == 1 {
			assert.Equal(t, got.Intent, due[0].Intent, "Get and Due disagree")
		}
		return got.Intent
	}
	assert.False(t, stored())
	steps := []struct {
		ev     transitions.Event
		to     states.State
		intent bool
	}{
		{transitions.SubmitSending, states.Submitting, true},
		{transitions.PossiblyCharged, states.Submitting, false},
		{transitions.SubmitSending, states.Submitting, true},
		{transitions.SubmitAccepted, states.Polling, false},
	}
	for _, st := range steps {
		// The caller's value is ignored either way.
		move(t, s, task, st.ev, st.to, func(x *persist.Task) { x.Intent = !st.intent })
		assert.Equal(t, st.intent, task.Intent, "after %s", st.ev)
		assert.Equal(t, st.intent, stored(), "after %s", st.ev)
	}
}
