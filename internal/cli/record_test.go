package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/transitions"
)

// bigFile writes n task lines with refs prefix-1..prefix-n.
func bigFile(t *testing.T, path string, n int, prefix string) {
	t.Helper()
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"method":"userrecaptcha","params":{"googlekey":"6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-","pageurl":"https://shop.example/checkout?cart=%d"},"ref":"%s-%d"}`+"\n", i, prefix, i)
	}
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
}

// createHeapProbe is a store whose Create measures the live heap first, when the
// caller holds everything it built for the transaction.
type createHeapProbe struct {
	persist.Store
	peak uint64
}

func (h *createHeapProbe) Create(ctx context.Context, tasks ...*persist.Task) error {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapAlloc)
	return h.Store.Create(ctx, tasks...)
}

// TestRecordingMemoryIsBoundedPerTask: recording a --from file holds one
// chunk of tasks, whatever the file's size. The live heap at its highest
// (measured before each transaction) grows by far less per task from N to
// 10N lines than reading the whole file first, as run did, which held
// every task with its parameters (about 1 KiB each here, and ~10 KB per
// task at its peak in the measure of the whole process).
func TestRecordingMemoryIsBoundedPerTask(t *testing.T) {
	// Not parallel: it measures the process's heap.
	const n = 2 * recordChunk
	peak := func(lines int, chunked bool) uint64 {
		dir := t.TempDir()
		file := filepath.Join(dir, "t.jsonl")
		bigFile(t, file, lines, "m")
		s, err := boltstore.Open(filepath.Join(dir, "m.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer s.Close()
		probe := &createHeapProbe{Store: s}
		f, err := os.Open(file)
		require.NoError(t, err)
		defer f.Close()
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		if chunked {
			var done atomic.Int64
			added, err := recordTasks(context.Background(), probe, "t.jsonl", f, nil, &done)
			require.NoError(t, err)
			require.Equal(t, lines, added)
		} else {
			reqs, err := readTasks("t.jsonl", f)
			require.NoError(t, err)
			tasks := make([]*persist.Task, len(reqs))
			for i, r := range reqs {
				tasks[i] = &persist.Task{ID: persist.NewID(), Ref: r.Ref, Method: r.Method, Params: r.Params, State: transitions.Initial}
			}
			require.NoError(t, probe.Create(context.Background(), tasks...))
			runtime.KeepAlive(tasks)
		}
		return probe.peak - min(probe.peak, base.HeapAlloc)
	}
	perTask := func(chunked bool) float64 {
		small, large := peak(n, chunked), peak(10*n, chunked)
		return (float64(large) - float64(small)) / float64(9*n)
	}
	chunked, whole := perTask(true), perTask(false)
	t.Logf("live heap per task, N=%d to 10N lines: chunked %.0f B, whole file %.0f B", n, chunked, whole)
	// What grows is the store's own cache of tasks in flight (~70 B each);
	// the engine that drives them holds ~600 B per task in any case.
	assert.Less(t, chunked, 256.0, "recording holds one chunk: the heap must not grow with the file")
	assert.Greater(t, whole, 3*max(chunked, 64), "the measure sees a file held whole")
}

// cancelOnFirstSubmit serves the simulator and cancels the command's
// context (the Ctrl-C) as the first in.php request arrives, which it
// answers.
func cancelOnFirstSubmit(t *testing.T, w *world) (context.Context, *atomic.Int64) {
	t.Helper()
	sim := providersim.New(providersim.Config{Mix: providersim.NoErrors()})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var submits atomic.Int64
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/in.php") {
			submits.Add(1)
			once.Do(cancel)
		}
		sim.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	w.env[EnvAPIURL] = srv.URL
	return ctx, &submits
}

// TestRunRecordsALargeFileBeforeSending: a file of several chunks is
// recorded whole before the first in.php request: every task's creation
// precedes the first submit's intent in the histories. Run again, the file
// adds nothing. Standard input is read twice through a spooled copy.
func TestRunRecordsALargeFileBeforeSending(t *testing.T) {
	t.Parallel()
	const n = 2*recordChunk + 345
	for _, stdin := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdin=%v", stdin), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			file := filepath.Join(w.dir, "big.jsonl")
			bigFile(t, file, n, "big")
			ctx, submits := cancelOnFirstSubmit(t, w)
			args := withPolicy(w, "run", "--from", file)
			var in *os.File
			if stdin {
				var err error
				in, err = os.Open(file)
				require.NoError(t, err)
				defer in.Close()
				args = withPolicy(w, "run", "--from", "-")
			}
			var r result
			if stdin {
				r = w.runCtx(ctx, in, args...)
			} else {
				r = w.runCtx(ctx, nil, args...)
			}
			require.Equal(t, ExitInterrupted, r.code, r.err)
			require.Positive(t, submits.Load())

			s := w.store()
			tasks, err := s.List(context.Background(), persist.ListOptions{})
			require.NoError(t, err)
			require.Len(t, tasks, n, "every task of the file is in the database")
			var lastCreated, firstSend int64
			refs := map[string]bool{}
			for _, task := range tasks {
				refs[task.Ref] = true
				h, err := s.History(context.Background(), task.ID)
				require.NoError(t, err)
				lastCreated = max(lastCreated, h[0].At.UnixNano())
				for _, rec := range h {
					if rec.Event == transitions.SubmitSending && (firstSend == 0 || rec.At.UnixNano() < firstSend) {
						firstSend = rec.At.UnixNano()
					}
				}
			}
			require.NoError(t, s.Close())
			assert.Len(t, refs, n)
			require.NotZero(t, firstSend, "a submit was sent")
			assert.Less(t, lastCreated, firstSend, "the whole file was recorded before the first submit")

			// The same file again: every ref is known, nothing is added.
			ctx, _ = cancelOnFirstSubmit(t, w)
			r = w.runCtx(ctx, nil, withPolicy(w, "run", "--from", file)...)
			require.Equal(t, ExitInterrupted, r.code, r.err)
			assert.Contains(t, r.err, fmt.Sprintf("captchafsm: 0 of %d tasks added; %d refs were already in the database", n, n))
			assert.Len(t, w.tasks(), n)
		})
	}
}

// TestTally: off a terminal, a long step prints its count every interval
// and its final count at the end; a short one prints nothing.
func TestTally(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	var count atomic.Int64
	drawn := make(chan struct{}, 1)
	tl := startTally(&out, false, 1, func() string {
		select {
		case drawn <- struct{}{}:
		default:
		}
		return fmt.Sprintf("recording %d/10 tasks", count.Load())
	})
	<-drawn // a tick came: the step is "long"
	count.Store(10)
	tl.end()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Equal(t, "recording 10/10 tasks", lines[len(lines)-1])

	var quiet bytes.Buffer
	startTally(&quiet, true, 1, func() string { return "never" }).end()
	assert.Empty(t, quiet.String(), "a step shorter than one tick shows nothing")
}
