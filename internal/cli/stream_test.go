package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// encodeWhole is how the commands wrote JSON before they streamed it: the
// whole value through one encoder. The streamed output must not differ
// by a byte.
func encodeWhole(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(v))
	return b.String()
}

func TestListJSONIsTheWholeArray(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(3)
	w.crashedTasks(2, nil)
	views := []engine.Task{}
	for _, task := range w.tasks() {
		views = append(views, engine.ViewOf(task))
	}
	r := w.run("list", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, encodeWhole(t, views), r.out)

	r = w.run("list", "--jsonl")
	require.Equal(t, ExitOK, r.code, r.err)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	require.Len(t, lines, 5)
	for i, l := range lines {
		var v engine.Task
		require.NoError(t, json.Unmarshal([]byte(l), &v))
		assert.Equal(t, views[i].ID, v.ID)
	}
	r = w.run("list", "--jsonl", "--state", "Failed")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Empty(t, r.out, "no task, no line")

	r = w.run("list", "--jsonl", "--json")
	assert.Equal(t, ExitUsage, r.code)
	assert.Equal(t, "captchafsm: --json and --jsonl: choose one (a JSON array, or one object per line)\n", r.err)
	assert.Empty(t, r.out)
}

func TestHistoryJSONIsTheWholeObject(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ids := w.crashedTasks(1, nil) // its last record is the intent to submit
	s := w.store()
	ctx := context.Background()
	task, err := s.Get(ctx, ids[0])
	require.NoError(t, err)
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.True(t, task.Intent)

	var want historyJSON
	want.Task.Task = engine.ViewOf(task)
	want.Task.PossiblyCharged = 1
	for _, r := range hist {
		want.History = append(want.History, engine.RecordViewOf(r))
	}
	r := w.run("history", task.ID, "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, encodeWhole(t, want), r.out)
}

// heapProbe is a command's output that measures the live heap each time
// the command writes (a buffered command writes every 64 KiB).
type heapProbe struct {
	n    int
	peak uint64
}

func (p *heapProbe) Write(b []byte) (int, error) {
	p.n += len(b)
	p.peak = max(p.peak, liveHeap())
	return len(b), nil
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestStreamingMemoryIsFlat: list (table, --json, --jsonl), replay --all
// and history hold no more memory for a database ten times larger. Each
// command's peak live heap above what was live before it ran is measured
// on a database of n tasks and of 10n; the difference must stay under
// what 10n tasks held in memory would take (the commands built whole
// slices before: about 1 KiB a task here, so 18 MiB more at 10n).
func TestStreamingMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 22,000 tasks")
	}
	const n = 2000
	small, large := newWorld(t), newWorld(t)
	fillTasks(t, small.db, n)
	fillTasks(t, large.db, 10*n)
	long := fillHistory(t, large.db, 3000)

	for _, args := range [][]string{
		{"list"}, {"list", "--json"}, {"list", "--jsonl"}, {"replay", "--all"}, {"replay", "--all", "--json"},
	} {
		peak := func(w *world) (uint64, int) {
			probe := &heapProbe{}
			root := w.root()
			root.SetOut(probe)
			root.SetErr(io.Discard)
			before := liveHeap()
			code := Execute(context.Background(), root, args)
			require.Equal(t, ExitOK, code, args)
			return probe.peak - min(probe.peak, before), probe.n
		}
		ps, outS := peak(small)
		pl, outL := peak(large)
		t.Logf("%v: peak live heap above the start %d KiB at %d tasks (%d KiB written), %d KiB at %d tasks (%d KiB written)",
			args, ps>>10, n, outS>>10, pl>>10, 10*n, outL>>10)
		assert.Greater(t, outL, 9*outS, "%v: the large database's output", args)
		assert.Less(t, int64(pl)-int64(ps), int64(2<<20), "%v: memory grows with the database", args)
	}

	// A history of 3,000 records streams too.
	probe := &heapProbe{}
	root := large.root()
	root.SetOut(probe)
	before := liveHeap()
	require.Equal(t, ExitOK, Execute(context.Background(), root, []string{"history", long}))
	t.Logf("history of 3,002 records: peak %d KiB above the start, %d KiB written", (probe.peak-min(probe.peak, before))>>10, probe.n>>10)
	assert.Less(t, probe.peak-min(probe.peak, before), uint64(2<<20))
}

// fillTasks adds n tasks (each with its first record) to the database at
// path, in chunks.
func fillTasks(t *testing.T, path string, n int) {
	t.Helper()
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for lo := 0; lo < n; lo += 2000 {
		tasks := make([]*persist.Task, min(2000, n-lo))
		for i := range tasks {
			tasks[i] = &persist.Task{ID: persist.NewID(), Ref: fmt.Sprintf("t-%d", lo+i), Method: "turnstile",
				Params: map[string]string{"sitekey": "0x4A", "pageurl": "https://a.example"}, Created: at, NextAt: at}
		}
		require.NoError(t, s.Create(context.Background(), tasks...))
	}
}

// fillHistory adds a task with a history of polls records to the
// database at path and returns its id.
func fillHistory(t *testing.T, path string, polls int) string {
	t.Helper()
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	ctx := context.Background()
	task := &persist.Task{ID: persist.NewID(), Method: "turnstile"}
	require.NoError(t, s.Create(ctx, task))
	task.State = states.Polling
	require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling}))
	for range polls {
		task.Polls++
		require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Polling, Event: transitions.NotReady, To: states.Polling,
			Code: "CAPCHA_NOT_READY"}))
	}
	return task.ID
}
