package persisttest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Run runs the conformance suite, one subtest per behaviour, against stores
// made by open. open is called once per subtest and must return a new,
// empty store; it should close the store in t.Cleanup, ignoring
// persist.ErrClosed (some subtests close the store themselves).
//
// Stores that implement persist.Compacter are also checked to lose nothing
// when compacted.
func Run(t *testing.T, open func(t *testing.T) persist.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s persist.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDefaults", testCreateDefaults},
		{"CreateInvalid", testCreateInvalid},
		{"DuplicateID", testDuplicateID},
		{"DuplicateRef", testDuplicateRef},
		{"NotFound", testNotFound},
		{"ListAndCount", testListAndCount},
		{"Apply", testApply},
		{"ApplyKeepsParams", testApplyKeepsParams},
		{"ApplyConflict", testApplyConflict},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"Prune", testPrune},
		{"ConcurrentTasks", testConcurrentTasks},
		{"RaceSameTask", testRaceSameTask},
		{"ContextCancelled", testContextCancelled},
		{"Closed", testClosed},
		{"CloseDuringApply", testCloseDuringApply},
		{"Compact", testCompact},
		{"Scan", testScan},
		{"ScanPages", testScanPages},
		{"ScanMovingTasks", testScanMovingTasks},
		{"ScanHistory", testScanHistory},
		{"Due", testDue},
		{"DueFollowsApply", testDueFollowsApply},
		{"LastSubmit", testLastSubmit},
		{"Intent", testIntent},
		{"Options", testOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// base is the creation time of the suite's tasks: not now, with
// nanoseconds, so a store that rounds or uses its own clock is caught.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

// newTask returns a task ready for Create.
func newTask(ref string, params map[string]string) *persist.Task {
	return &persist.Task{
		ID:      persist.NewID(),
		Ref:     ref,
		Method:  "post",
		Params:  params,
		Created: base,
		Updated: base,
	}
}

// move applies the transition from task's state to to on event, after
// change has edited the task's fields, and returns the record.
func move(t *testing.T, s persist.Store, task *persist.Task, ev transitions.Event, to states.State, change func(*persist.Task)) *persist.Record {
	t.Helper()
	rec, err := tryMove(s, task, ev, to, change)
	require.NoError(t, err)
	return rec
}

func tryMove(s persist.Store, task *persist.Task, ev transitions.Event, to states.State, change func(*persist.Task)) (*persist.Record, error) {
	rec := &persist.Record{At: task.Updated.Add(time.Second), From: task.State, Event: ev, To: to}
	task.State = to
	task.Updated = rec.At
	if change != nil {
		change(task)
	}
	return rec, s.Apply(context.Background(), task, rec)
}

// sameTask asserts that got holds want's fields, times compared with Equal.
func sameTask(t *testing.T, want, got *persist.Task, withParams bool) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Ref, got.Ref)
	assert.Equal(t, want.Method, got.Method)
	if withParams {
		assert.Equal(t, want.Params, got.Params)
	} else {
		assert.Nil(t, got.Params)
	}
	assert.Equal(t, want.State, got.State)
	assert.Equal(t, want.Code, got.Code)
	assert.Equal(t, []int{want.Submits, want.Retries, want.Resubmits, want.Polls},
		[]int{got.Submits, got.Retries, got.Resubmits, got.Polls})
	assert.Equal(t, want.ProviderID, got.ProviderID)
	assert.Equal(t, want.Token, got.Token)
	assert.Equal(t, want.Cost, got.Cost)
	assert.Equal(t, want.Seq, got.Seq)
	wo, gotOpts := want.Options, got.Options
	assert.Truef(t, wo.Deadline.Equal(gotOpts.Deadline), "Options.Deadline: want %v, got %v", wo.Deadline, gotOpts.Deadline)
	wo.Deadline, gotOpts.Deadline = time.Time{}, time.Time{}
	assert.Equal(t, wo, gotOpts, "Options")
	for _, p := range []struct {
		name      string
		want, got time.Time
	}{
		{"NextAt", want.NextAt, got.NextAt},
		{"PollSince", want.PollSince, got.PollSince},
		{"Created", want.Created, got.Created},
		{"Updated", want.Updated, got.Updated},
	} {
		assert.Truef(t, p.want.Equal(p.got), "%s: want %v, got %v", p.name, p.want, p.got)
	}
}

// sameRecord asserts that got is want, At compared with Equal.
func sameRecord(t *testing.T, want, got persist.Record) {
	t.Helper()
	assert.Truef(t, want.At.Equal(got.At), "record %d At: want %v, got %v", want.Seq, want.At, got.At)
	want.At, got.At = time.Time{}, time.Time{}
	assert.Equal(t, want, got)
}

func testCreateGet(t *testing.T, s persist.Store) {
	ctx := context.Background()
	// A 130 kB base64 image, as the base64 method sends.
	img := base64.StdEncoding.EncodeToString(make([]byte, 100_000))
	task := newTask("order-1", map[string]string{"body": img, "phrase": "1"})
	require.NoError(t, s.Create(ctx, task))
	assert.Equal(t, states.Submitting, task.State)
	assert.Equal(t, uint64(1), task.Seq)

	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	sameTask(t, task, got, true)
	byRef, err := s.GetByRef(ctx, "order-1")
	require.NoError(t, err)
	sameTask(t, task, byRef, true)

	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.Len(t, hist, 1)
	sameRecord(t, persist.Record{Seq: 1, At: base, Event: transitions.Created, To: states.Submitting}, hist[0])

	// The store hands out copies: editing one changes nothing stored.
	got.Params["phrase"] = "0"
	got.State = states.Done
	again, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	sameTask(t, task, again, true)
}

func testCreateDefaults(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := &persist.Task{ID: persist.NewID(), Method: "post"}
	before := time.Now()
	require.NoError(t, s.Create(ctx, task))
	assert.Equal(t, states.Submitting, task.State)
	assert.Equal(t, uint64(1), task.Seq)
	assert.False(t, task.Created.Before(before.Truncate(time.Second)), "Created %v is before the call", task.Created)
	assert.True(t, task.Updated.Equal(task.Created))
	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	sameTask(t, task, got, true)
	assert.Nil(t, got.Params)
}

func testCreateInvalid(t *testing.T, s persist.Store) {
	ctx := context.Background()
	noID := newTask("", nil)
	noID.ID = ""
	polling := newTask("", nil)
	polling.State = states.Polling
	for name, task := range map[string]*persist.Task{"no id": noID, "not Submitting": polling} {
		assert.Error(t, s.Create(ctx, newTask("", nil), task), name)
	}
	all, err := s.List(ctx, persist.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, all, "a failed Create stored tasks")
}

func testDuplicateID(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("", nil)
	require.NoError(t, s.Create(ctx, task))
	dup := newTask("", nil)
	dup.ID = task.ID
	require.ErrorIs(t, s.Create(ctx, dup), persist.ErrDuplicateID)
	twice := newTask("", nil)
	require.ErrorIs(t, s.Create(ctx, twice, twice.Clone()), persist.ErrDuplicateID)
	_, err := s.Get(ctx, twice.ID)
	require.ErrorIs(t, err, persist.ErrNotFound)
}

func testDuplicateRef(t *testing.T, s persist.Store) {
	ctx := context.Background()
	require.NoError(t, s.Create(ctx, newTask("a", nil)))

	fresh := newTask("x", nil)
	err := s.Create(ctx, fresh, newTask("a", nil))
	require.ErrorIs(t, err, persist.ErrDuplicateRef)
	// All or none: the first task of the failed call is not stored.
	_, err = s.Get(ctx, fresh.ID)
	require.ErrorIs(t, err, persist.ErrNotFound)
	_, err = s.GetByRef(ctx, "x")
	require.ErrorIs(t, err, persist.ErrNotFound)
	assert.Zero(t, fresh.Seq, "a failed Create changed the task")

	require.ErrorIs(t, s.Create(ctx, newTask("y", nil), newTask("y", nil)), persist.ErrDuplicateRef)
	_, err = s.GetByRef(ctx, "y")
	require.ErrorIs(t, err, persist.ErrNotFound)

	// Tasks without a ref never clash.
	require.NoError(t, s.Create(ctx, newTask("", nil), newTask("", nil)))
}

func testNotFound(t *testing.T, s persist.Store) {
	ctx := context.Background()
	id := persist.NewID()
	_, err := s.Get(ctx, id)
	assert.ErrorIs(t, err, persist.ErrNotFound)
	_, err = s.GetByRef(ctx, "nobody")
	assert.ErrorIs(t, err, persist.ErrNotFound)
	_, err = s.History(ctx, id)
	assert.ErrorIs(t, err, persist.ErrNotFound)
	ghost := newTask("", nil)
	ghost.State, ghost.Seq = states.Submitting, 1
	_, err = tryMove(s, ghost, transitions.SubmitSending, states.Submitting, nil)
	assert.ErrorIs(t, err, persist.ErrNotFound)
}

func testListAndCount(t *testing.T, s persist.Store) {
	ctx := context.Background()
	tasks := make([]*persist.Task, 10)
	for i := range tasks {
		tasks[i] = newTask("r"+strconv.Itoa(i), map[string]string{"i": strconv.Itoa(i)})
	}
	// Two calls, so order does not come from one call alone.
	require.NoError(t, s.Create(ctx, tasks[:4]...))
	require.NoError(t, s.Create(ctx, tasks[4:]...))
	toPolling := func(task *persist.Task) {
		move(t, s, task, transitions.SubmitAccepted, states.Polling, func(c *persist.Task) { c.ProviderID = "p" + c.Ref })
	}
	for _, i := range []int{1, 3, 4, 8} {
		toPolling(tasks[i])
	}
	for _, i := range []int{3, 8} {
		move(t, s, tasks[i], transitions.Solved, states.Done, func(c *persist.Task) { c.Token = "tok" })
	}
	move(t, s, tasks[6], transitions.PermanentError, states.Failed, nil)

	ids := func(ts []*persist.Task) []string {
		var out []string
		for _, task := range ts {
			out = append(out, task.ID)
		}
		return out
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, tasks[i].ID)
		}
		return out
	}
	tests := []struct {
		name string
		opts persist.ListOptions
		want []string
	}{
		{"all", persist.ListOptions{}, pick(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{"limit", persist.ListOptions{Limit: 3}, pick(0, 1, 2)},
		{"submitting", persist.ListOptions{States: []states.State{states.Submitting}}, pick(0, 2, 5, 7, 9)},
		{"polling", persist.ListOptions{States: []states.State{states.Polling}}, pick(1, 4)},
		{"done and polling", persist.ListOptions{States: []states.State{states.Done, states.Polling}}, pick(1, 3, 4, 8)},
		{"done and polling, limit", persist.ListOptions{States: []states.State{states.Done, states.Polling}, Limit: 3}, pick(1, 3, 4)},
		{"terminal", persist.ListOptions{States: []states.State{states.Failed, states.Done}}, pick(3, 6, 8)},
		{"empty state", persist.ListOptions{States: []states.State{states.NeedsAccountFix}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.List(ctx, tt.opts)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(got))
			for _, g := range got {
				i := slices.Index(ids(tasks), g.ID)
				sameTask(t, tasks[i], g, false)
			}
		})
	}
	// Ids sort by creation.
	assert.True(t, slices.IsSorted(ids(tasks)), "persist.NewID ids do not sort by creation")

	counts, err := s.Count(ctx)
	require.NoError(t, err)
	want := map[states.State]int{states.Submitting: 5, states.Polling: 2, states.Done: 2, states.Failed: 1}
	for _, st := range states.All() {
		assert.Equal(t, want[st], counts[st], st)
	}
}

func testApply(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("", map[string]string{"k": "v"})
	require.NoError(t, s.Create(ctx, task))
	want := []persist.Record{{Seq: 1, At: base, Event: transitions.Created, To: states.Submitting}}
	steps := []struct {
		ev     transitions.Event
		to     states.State
		change func(*persist.Task)
		rec    func(*persist.Record)
	}{
		{transitions.SubmitSending, states.Submitting, func(c *persist.Task) { c.Submits++ },
			func(r *persist.Record) { r.PossiblyCharged = true; r.Detail = "sending" }},
		{transitions.SubmitAccepted, states.Polling, func(c *persist.Task) {
			c.ProviderID = "7234"
			c.PollSince = c.Updated
			c.NextAt = c.Updated.Add(5 * time.Second)
		}, func(r *persist.Record) { r.ProviderID = "7234" }},
		{transitions.NotReady, states.Polling, func(c *persist.Task) { c.Polls++; c.Code = "CAPCHA_NOT_READY" },
			func(r *persist.Record) { r.Code = "CAPCHA_NOT_READY" }},
		{transitions.Solved, states.Done, func(c *persist.Task) {
			c.Polls++
			c.Code, c.Token, c.Cost, c.NextAt = "", "03AGdBq2", "0.00299", time.Time{}
		}, nil},
	}
	for i, st := range steps {
		rec := &persist.Record{At: task.Updated.Add(time.Second), From: task.State, Event: st.ev, To: st.to}
		if st.rec != nil {
			st.rec(rec)
		}
		task.State, task.Updated = st.to, rec.At
		st.change(task)
		require.NoError(t, s.Apply(ctx, task, rec), "step %d", i)
		assert.Equal(t, uint64(i+2), task.Seq)
		assert.Equal(t, uint64(i+2), rec.Seq)
		want = append(want, *rec)

		got, err := s.Get(ctx, task.ID)
		require.NoError(t, err)
		sameTask(t, task, got, true)
	}
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.Len(t, hist, len(want))
	for i := range want {
		sameRecord(t, want[i], hist[i])
	}
}

func testApplyKeepsParams(t *testing.T, s persist.Store) {
	ctx := context.Background()
	params := map[string]string{"body": base64.StdEncoding.EncodeToString([]byte("image")), "numeric": "1"}
	task := newTask("kp", map[string]string{"body": params["body"], "numeric": "1"})
	require.NoError(t, s.Create(ctx, task))

	task.Params = nil
	move(t, s, task, transitions.SubmitSending, states.Submitting, nil)
	task.Params = map[string]string{"body": "changed"}
	move(t, s, task, transitions.SubmitAccepted, states.Polling, nil)

	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, params, got.Params)
	byRef, err := s.GetByRef(ctx, "kp")
	require.NoError(t, err)
	assert.Equal(t, params, byRef.Params)
	assert.Equal(t, uint64(3), byRef.Seq)
}

// testOptions: a task's options come back from every read as they were
// created, to the nanosecond; Apply keeps them whatever the task it is
// given holds; Create refuses options no store can keep.
func testOptions(t *testing.T, s persist.Store) {
	ctx := context.Background()
	opts := persist.TaskOptions{Deadline: base.Add(90*time.Second + 7), Priority: -12, MaxRetries: 9, MaxResubmits: -1,
		Labels: map[string]string{"pingback": "http://127.0.0.1:9/cb?a=1&b=\"2\"", "ключ": "значение ✓", "empty": ""}}
	task := newTask("opts", nil)
	task.Options = opts
	plain := newTask("", nil)
	require.NoError(t, s.Create(ctx, task, plain))

	check := func(what string, got *persist.Task) {
		t.Helper()
		assert.Truef(t, opts.Deadline.Equal(got.Options.Deadline), "%s: deadline %v, want %v", what, got.Options.Deadline, opts.Deadline)
		assert.Equal(t, []int{opts.Priority, opts.MaxRetries, opts.MaxResubmits},
			[]int{got.Options.Priority, got.Options.MaxRetries, got.Options.MaxResubmits}, what)
		assert.Equal(t, opts.Labels, got.Options.Labels, what)
	}
	byID, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	check("Get", byID)
	byRef, err := s.GetByRef(ctx, "opts")
	require.NoError(t, err)
	check("GetByRef", byRef)
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	require.Len(t, due, 2)
	for _, d := range due {
		if d.ID == task.ID {
			check("Due", d)
		} else {
			assert.Zero(t, d.Options, "a task created without options has none")
		}
	}

	// Apply keeps them as created.
	task.Options = persist.TaskOptions{Priority: 99}
	move(t, s, task, transitions.SubmitSending, states.Submitting, nil)
	task.Options = persist.TaskOptions{}
	move(t, s, task, transitions.SubmitAccepted, states.Polling, func(tk *persist.Task) { tk.ProviderID = "1" })
	listed, err := s.List(ctx, persist.ListOptions{States: []states.State{states.Polling}})
	require.NoError(t, err)
	require.Len(t, listed, 1)
	check("List after Apply", listed[0])
	var scanned *persist.Task
	require.NoError(t, s.Scan(ctx, persist.ListOptions{}, func(t *persist.Task) error {
		if t.Ref == "opts" {
			scanned = t
		}
		return nil
	}))
	require.NotNil(t, scanned)
	check("Scan after Apply", scanned)

	if math.MaxInt > math.MaxInt32 {
		bad := newTask("bad-opts", nil)
		bad.Options.Priority = math.MaxInt32 + 1
		err := s.Create(ctx, bad)
		require.ErrorIs(t, err, persist.ErrInvalidOptions)
		assert.ErrorContains(t, err, "priority")
		_, err = s.Get(ctx, bad.ID)
		require.ErrorIs(t, err, persist.ErrNotFound, "nothing stored")
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"too many", func() map[string]string {
			m := map[string]string{}
			for i := range persist.MaxLabels + 1 {
				m[fmt.Sprint("k", i)] = "v"
			}
			return m
		}(), "labels"},
		{"empty key", map[string]string{"": "v"}, `key ""`},
		{"too long", map[string]string{"k": strings.Repeat("v", persist.MaxLabelsLen)}, "bytes, at most"},
		{"nul", map[string]string{"k": "a\x00b"}, "NUL"},
		{"not utf-8", map[string]string{"k": "\xff"}, "UTF-8"},
	} {
		bad := newTask("bad-labels-"+tc.name, nil)
		bad.Options.Labels = tc.labels
		err := s.Create(ctx, bad)
		require.ErrorIs(t, err, persist.ErrInvalidOptions, tc.name)
		assert.ErrorContains(t, err, tc.want, tc.name)
		_, err = s.Get(ctx, bad.ID)
		require.ErrorIs(t, err, persist.ErrNotFound, "%s: nothing stored", tc.name)
	}
}

func testApplyConflict(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("", nil)
	require.NoError(t, s.Create(ctx, task))
	move(t, s, task, transitions.SubmitAccepted, states.Polling, nil)
	stale := task.Clone()
	move(t, s, task, transitions.NotReady, states.Polling, nil)

	tests := []struct {
		name string
		task *persist.Task
		from states.State
	}{
		{"wrong from", task.Clone(), states.Submitting},
		{"stale seq", stale, states.Polling},
		{"future seq", func() *persist.Task { c := task.Clone(); c.Seq++; return c }(), states.Polling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := tt.task.Seq
			tt.task.State = states.Done
			rec := &persist.Record{At: base.Add(time.Hour), From: tt.from, Event: transitions.Solved, To: states.Done}
			require.ErrorIs(t, s.Apply(ctx, tt.task, rec), persist.ErrConflict)
			assert.Equal(t, seq, tt.task.Seq, "a conflicting Apply changed the task's seq")

			got, err := s.Get(ctx, task.ID)
			require.NoError(t, err)
			sameTask(t, task, got, true)
			hist, err := s.History(ctx, task.ID)
			require.NoError(t, err)
			assert.Len(t, hist, 3)
		})
	}
}

func testTimesRoundTrip(t *testing.T, s persist.Store) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+05:30", 5*3600+1800)
	now := time.Now() // carries a monotonic reading, which a store strips
	task := newTask("", nil)
	task.Created = now
	task.Updated = now
	require.NoError(t, s.Create(ctx, task))

	nextAt := now.Add(1500 * time.Millisecond).In(zone)
	pollSince := time.Date(2031, 12, 31, 23, 59, 59, 999999999, zone)
	rec := move(t, s, task, transitions.SubmitAccepted, states.Polling, func(c *persist.Task) {
		c.NextAt, c.PollSince = nextAt, pollSince
		c.Updated = now.Add(time.Nanosecond)
	})
	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.True(t, got.NextAt.Equal(nextAt), "NextAt: want %v, got %v", nextAt, got.NextAt)
	assert.True(t, got.PollSince.Equal(pollSince), "PollSince: want %v, got %v", pollSince, got.PollSince)
	assert.True(t, got.Created.Equal(now), "Created: want %v, got %v", now, got.Created)
	assert.True(t, got.Updated.Equal(now.Add(time.Nanosecond)), "Updated: want %v, got %v", now.Add(time.Nanosecond), got.Updated)
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.Len(t, hist, 2)
	assert.True(t, hist[1].At.Equal(rec.At))
	assert.True(t, hist[0].At.Equal(now))

	// A zero time stays zero.
	move(t, s, task, transitions.NotReady, states.Polling, func(c *persist.Task) { c.NextAt = time.Time{} })
	got, err = s.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.True(t, got.NextAt.IsZero(), "NextAt: want zero, got %v", got.NextAt)
}

func testPrune(t *testing.T, s persist.Store) {
	ctx := context.Background()
	cutoff := base.Add(time.Hour)
	type spec struct {
		ref     string
		to      []states.State // the path after Submitting
		updated time.Time
		gone    bool
	}
	specs := []spec{
		{"old-done", []states.State{states.Polling, states.Done}, base, true},
		{"old-failed", []states.State{states.Failed}, base, true},
		{"new-done", []states.State{states.Polling, states.Done}, cutoff.Add(time.Second), false},
		{"at-cutoff", []states.State{states.Failed}, cutoff, false},
		{"old-polling", []states.State{states.Polling}, base, false},
		{"old-account", []states.State{states.NeedsAccountFix}, base, false},
		{"old-submitting", nil, base, false},
	}
	events := map[states.State]transitions.Event{
		states.Polling: transitions.SubmitAccepted, states.Done: transitions.Solved,
		states.Failed: transitions.PermanentError, states.NeedsAccountFix: transitions.AccountError,
	}
	tasks := map[string]*persist.Task{}
	for _, sp := range specs {
		task := newTask(sp.ref, map[string]string{"ref": sp.ref})
		require.NoError(t, s.Create(ctx, task))
		for _, to := range sp.to {
			move(t, s, task, events[to], to, func(c *persist.Task) { c.Updated = sp.updated })
		}
		tasks[sp.ref] = task
	}

	n, err := s.Prune(ctx, cutoff)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for _, sp := range specs {
		id := tasks[sp.ref].ID
		_, errGet := s.Get(ctx, id)
		_, errRef := s.GetByRef(ctx, sp.ref)
		_, errHist := s.History(ctx, id)
		if sp.gone {
			assert.ErrorIs(t, errGet, persist.ErrNotFound, sp.ref)
			assert.ErrorIs(t, errRef, persist.ErrNotFound, sp.ref)
			assert.ErrorIs(t, errHist, persist.ErrNotFound, sp.ref)
		} else {
			assert.NoError(t, errGet, sp.ref)
			assert.NoError(t, errRef, sp.ref)
			assert.NoError(t, errHist, sp.ref)
		}
	}
	counts, err := s.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, counts[states.Done])
	assert.Equal(t, 1, counts[states.Failed])
	list, err := s.List(ctx, persist.ListOptions{States: []states.State{states.Done, states.Failed}})
	require.NoError(t, err)
	assert.Len(t, list, 2)

	// A pruned task's ref is free again; a second prune finds nothing.
	require.NoError(t, s.Create(ctx, newTask("old-done", nil)))
	n, err = s.Prune(ctx, cutoff)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func testConcurrentTasks(t *testing.T, s persist.Store) {
	ctx := context.Background()
	const n = 1000
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = newTask("c"+strconv.Itoa(i), map[string]string{"i": strconv.Itoa(i)})
	}
	require.NoError(t, s.Create(ctx, tasks...))

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Go(func() {
			for _, st := range []struct {
				ev transitions.Event
				to states.State
			}{
				{transitions.SubmitSending, states.Submitting},
				{transitions.SubmitAccepted, states.Polling},
				{transitions.NotReady, states.Polling},
			} {
				if _, err := tryMove(s, task, st.ev, st.to, func(c *persist.Task) { c.Polls = i }); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "task %d", i)
	}
	counts, err := s.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[states.State]int{states.Polling: n}, nonZero(counts))
	for i, task := range tasks {
		got, err := s.Get(ctx, task.ID)
		require.NoError(t, err)
		require.Equal(t, i, got.Polls)
		require.Equal(t, uint64(4), got.Seq)
		hist, err := s.History(ctx, task.ID)
		require.NoError(t, err)
		require.Len(t, hist, 4)
		for j, r := range hist {
			require.Equal(t, uint64(j+1), r.Seq)
		}
		require.Equal(t, transitions.NotReady, hist[3].Event)
	}
}

func nonZero(m map[states.State]int) map[states.State]int {
	out := map[states.State]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func testRaceSameTask(t *testing.T, s persist.Store) {
	ctx := context.Background()
	const n = 200
	task := newTask("", nil)
	require.NoError(t, s.Create(ctx, task))

	// Round 1: all start from the same copy; exactly one may win.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := task.Clone()
		wg.Go(func() {
			_, errs[i] = tryMove(s, c, transitions.SubmitSending, states.Submitting,
				func(c *persist.Task) { c.Submits = i })
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, persist.ErrConflict, "goroutine %d", i)
	}
	require.Equal(t, 1, wins)

	// Round 2: each goroutine rereads and retries until its move commits.
	seqs := make([]uint64, n)
	for i := range n {
		wg.Go(func() {
			for range 100 * n {
				c, err := s.Get(ctx, task.ID)
				if err != nil {
					errs[i] = err
					return
				}
				rec := &persist.Record{At: base, From: states.Submitting, Event: transitions.PossiblyCharged,
					To: states.Submitting, Detail: strconv.Itoa(i)}
				err = s.Apply(ctx, c, rec)
				if errors.Is(err, persist.ErrConflict) {
					continue
				}
				errs[i], seqs[i] = err, rec.Seq
				return
			}
			errs[i] = fmt.Errorf("goroutine %d never committed", i)
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
	}
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.Len(t, hist, 2+n)
	seen := map[string]bool{}
	for j, r := range hist {
		require.Equal(t, uint64(j+1), r.Seq, "history is not contiguous")
		if j >= 2 {
			require.Equal(t, transitions.PossiblyCharged, r.Event)
			require.False(t, seen[r.Detail], "record of %s written twice", r.Detail)
			seen[r.Detail] = true
		}
	}
	require.Len(t, seen, n)
	for i, seq := range seqs {
		require.Equal(t, strconv.Itoa(i), hist[seq-1].Detail, "goroutine %d was told seq %d", i, seq)
	}
	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(2+n), got.Seq)
}

func testContextCancelled(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("cx", nil)
	require.NoError(t, s.Create(ctx, task))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	c := task.Clone()
	c.State = states.Polling
	err := s.Apply(cancelled, c, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling})
	require.ErrorIs(t, err, context.Canceled)
	got, err := s.Get(ctx, task.ID)
	require.NoError(t, err)
	sameTask(t, task, got, true)
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	assert.Len(t, hist, 1)

	other := newTask("cy", nil)
	require.ErrorIs(t, s.Create(cancelled, other), context.Canceled)
	_, err = s.Get(ctx, other.ID)
	require.ErrorIs(t, err, persist.ErrNotFound)

	_, err = s.Get(cancelled, task.ID)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.List(cancelled, persist.ListOptions{})
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.Scan(cancelled, persist.ListOptions{}, func(*persist.Task) error { return nil }), context.Canceled)
	assert.ErrorIs(t, s.ScanHistory(cancelled, task.ID, func(persist.Record) error { return nil }), context.Canceled)
	_, err = s.Due(cancelled, persist.DueOptions{})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Prune(cancelled, base.Add(time.Hour))
	assert.ErrorIs(t, err, context.Canceled)
}

func testClosed(t *testing.T, s persist.Store) {
	ctx := context.Background()
	task := newTask("cl", nil)
	require.NoError(t, s.Create(ctx, task))
	require.NoError(t, s.Close())

	c := task.Clone()
	c.State = states.Polling
	calls := map[string]func() error{
		"Create": func() error { return s.Create(ctx, newTask("", nil)) },
		"Apply": func() error {
			return s.Apply(ctx, c, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling})
		},
		"Get":      func() error { _, err := s.Get(ctx, task.ID); return err },
		"GetByRef": func() error { _, err := s.GetByRef(ctx, "cl"); return err },
		"List":     func() error { _, err := s.List(ctx, persist.ListOptions{}); return err },
		"Count":    func() error { _, err := s.Count(ctx); return err },
		"History":  func() error { _, err := s.History(ctx, task.ID); return err },
		"ScanHistory": func() error {
			return s.ScanHistory(ctx, task.ID, func(persist.Record) error { return nil })
		},
		"Scan":       func() error { return s.Scan(ctx, persist.ListOptions{}, func(*persist.Task) error { return nil }) },
		"Due":        func() error { _, err := s.Due(ctx, persist.DueOptions{}); return err },
		"LastSubmit": func() error { _, err := s.LastSubmit(ctx); return err },
		"Prune":      func() error { _, err := s.Prune(ctx, base); return err },
		"Close":      s.Close,
	}
	if cp, ok := s.(persist.Compacter); ok {
		calls["Compact"] = func() error { return cp.Compact(ctx) }
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), persist.ErrClosed, name)
	}
}

func testCloseDuringApply(t *testing.T, s persist.Store) {
	ctx := context.Background()
	const n = 100
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = newTask("", nil)
	}
	require.NoError(t, s.Create(ctx, tasks...))
	errs := make([]error, n)
	var started, wg sync.WaitGroup
	started.Add(n)
	for i, task := range tasks {
		wg.Go(func() {
			started.Done()
			for errs[i] == nil {
				_, errs[i] = tryMove(s, task, transitions.SubmitSending, states.Submitting, nil)
			}
		})
	}
	started.Wait()
	require.NoError(t, s.Close())
	wg.Wait() // no caller may hang
	for i, err := range errs {
		require.ErrorIs(t, err, persist.ErrClosed, "goroutine %d", i)
	}
}

func testCompact(t *testing.T, s persist.Store) {
	cp, ok := s.(persist.Compacter)
	if !ok {
		t.Skip("the store does not implement persist.Compacter")
	}
	ctx := context.Background()
	var keep []*persist.Task
	for i := range 50 {
		task := newTask("k"+strconv.Itoa(i), map[string]string{"n": strconv.Itoa(i)})
		require.NoError(t, s.Create(ctx, task))
		move(t, s, task, transitions.SubmitAccepted, states.Polling, nil)
		if i%2 == 0 {
			move(t, s, task, transitions.Solved, states.Done, nil)
		} else {
			keep = append(keep, task)
		}
	}
	n, err := s.Prune(ctx, base.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 25, n)
	require.NoError(t, cp.Compact(ctx))
	for _, task := range keep {
		got, err := s.Get(ctx, task.ID)
		require.NoError(t, err)
		sameTask(t, task, got, true)
		hist, err := s.History(ctx, task.ID)
		require.NoError(t, err)
		require.Len(t, hist, 2)
	}
	// The store works on after compaction.
	move(t, s, keep[0], transitions.Solved, states.Done, nil)
	counts, err := s.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[states.State]int{states.Polling: 24, states.Done: 1}, nonZero(counts))
}
