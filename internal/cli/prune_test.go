package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestParseAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"720h", 720 * time.Hour, ""},
		{"0s", 0, "must be positive"},
		{"-5h", 0, "must be positive"},
		{"soon", 0, "want a duration"},
		{"3dd", 0, "want a duration"},
		{"", 0, "must be positive"},
	} {
		got, err := parseAge(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(3)
	w.crashedTasks(1, nil)

	r := w.run("prune", "--older-than", "30d")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "pruned 0 terminal tasks")
	assert.Len(t, w.tasks(), 4)

	// Everything finished before now is old enough for 1ns; the task in
	// flight stays.
	r = w.run("prune", "--older-than", "1ns", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &res))
	assert.EqualValues(t, 3, res["pruned"])
	for _, k := range []string{"used_before", "used_after", "freed", "file_size", "disk_size"} {
		assert.Contains(t, res, k)
	}
	left := w.tasks()
	require.Len(t, left, 1)
	assert.Equal(t, states.Submitting, left[0].State)

	r = w.run("prune", "--older-than", "soon")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `--older-than "soon": want a duration`)
	r = w.run("prune")
	assert.Contains(t, r.err, "--older-than DURATION is required")
}

// TestPruneReportsBytesUsed: prune reports what the data used before and
// after, and what it freed, from the pages that hold data: not the file's
// apparent size, which bbolt keeps ahead of its data (a sparse tail) and
// which used to read as if pruning grew the file.
func TestPruneReportsBytesUsed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// 3,000 finished tasks with 2 kB of params each, and one in flight.
	s, err := boltstore.Open(w.db, &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	ctx := context.Background()
	at := time.Now().Add(-48 * time.Hour)
	tasks := make([]*persist.Task, 3001)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Method: "base64", Created: at,
			Params: map[string]string{"body": strings.Repeat("Q", 2000)}}
	}
	require.NoError(t, s.Create(ctx, tasks...))
	var wg sync.WaitGroup
	for _, task := range tasks[1:] {
		wg.Go(func() {
			task.State, task.Updated = states.Failed, at
			assert.NoError(t, s.Apply(ctx, task, &persist.Record{At: at, From: states.Submitting,
				Event: transitions.PermanentError, To: states.Failed}))
		})
	}
	wg.Wait()
	before, err := s.Space(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	fi, err := os.Stat(w.db)
	require.NoError(t, err)
	require.Greater(t, before.Used, int64(3000*2000))

	r := w.run("prune", "--older-than", "1d", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var res pruneJSON
	require.NoError(t, json.Unmarshal([]byte(r.out), &res))
	assert.Equal(t, 3000, res.Pruned)
	assert.Equal(t, before.Used, res.UsedBefore, "used before: the pages that held data")
	assert.Less(t, res.UsedAfter, res.UsedBefore/50, "one task is left")
	assert.Equal(t, res.UsedBefore-res.UsedAfter, res.Freed)
	assert.Greater(t, res.Freed, int64(3000*2000))
	after, err := os.Stat(w.db)
	require.NoError(t, err)
	assert.Equal(t, after.Size(), res.FileSize)
	assert.LessOrEqual(t, res.DiskSize, res.FileSize)
	assert.Less(t, res.DiskSize, fi.Size()/10, "the compacted file occupies a tenth of the disk it did")
	assert.GreaterOrEqual(t, res.FileSize, res.UsedAfter)
	assert.Len(t, w.tasks(), 1)

	r = w.run("prune", "--older-than", "1d")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "pruned 0 terminal tasks")
	assert.Regexp(t, `data: [0-9.]+ KiB before, [0-9.]+ KiB after: 0 B freed`, r.out)
	assert.Regexp(t, `file: [0-9.]+ KiB on disk \([0-9.]+ KiB apparent`, r.out)
}

func TestBytesText(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		27 << 20: "27.0 MiB", 3 << 30: "3.0 GiB", 5 << 40: "5.0 TiB", 5 << 50: "5120.0 TiB"} {
		assert.Equal(t, want, bytesText(n), n)
	}
}
