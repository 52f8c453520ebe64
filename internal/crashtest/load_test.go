package crashtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/crashtest"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

const (
	// loadFullEnv turns on the full load: 10,000 tasks.
	loadFullEnv = "CAPTCHAFSM_LOAD_FULL"
	// loadSizeEnv overrides the number of tasks.
	loadSizeEnv = "CAPTCHAFSM_LOAD_N"
	// loadChildEnv marks the child process that measures.
	loadChildEnv = "CRASHTEST_LOAD_CHILD"
	// loadFiguresPrefix marks the figures line in the test's log.
	loadFiguresPrefix = "load-figures: "
)

// switchAPI is the engine's provider, replaceable between rounds: a round
// has its simulator, and the heap is measured with none attached, so that
// the provider's own books (it keeps every task it charged) are not
// counted as the engine's.
type switchAPI struct {
	mu sync.RWMutex
	c  *provider.Client
}

var errNoProvider = errors.New("no provider attached")

func (s *switchAPI) set(c *provider.Client) {
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
}

func (s *switchAPI) client() *provider.Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.c
}

func (s *switchAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	if c := s.client(); c != nil {
		return c.Submit(ctx, req)
	}
	return "", errNoProvider
}

func (s *switchAPI) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	if c := s.client(); c != nil {
		return c.Poll(ctx, ids)
	}
	return nil, errNoProvider
}

// liveHeap is HeapAlloc after two collections (the second empties
// sync.Pool caches).
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// loadFigures are the load test's measurements (docs/reliability.md).
type loadFigures struct {
	N            int     `json:"n"`
	Done         int     `json:"done"`
	Failed       int     `json:"failed"`
	BreakerTrips int     `json:"breaker_trips"`
	Charged      int     `json:"charged"`
	Bans         int     `json:"bans"`
	VirtualSec   float64 `json:"virtual_s"`
	HeapBefore   uint64  `json:"heap_before"`
	HeapPeak     uint64  `json:"heap_peak"`
	HeapRound1   uint64  `json:"heap_after_round1"`
	HeapRound2   uint64  `json:"heap_after_round2"`
	Goroutines   [3]int  `json:"goroutines"` // before, after round 1, after round 2
}

// TestLoad drives N tasks (10,000 with CAPTCHAFSM_LOAD_FULL=1; 1,000 by
// default) through one engine on one bbolt file, with the simulator's
// default error mix (the breaker trips on ERROR_ZERO_BALANCE; the test
// plays the person who fixes the account), in two equal rounds on virtual
// time. Nothing is lost, the provider never bans the account, and the
// heap is flat: after a round the engine keeps at most a little per task
// it has seen (the capacity of its maps), and a second round adds nothing.
//
// It measures the whole process's heap, so the test runs itself in a child
// process (this test binary) and reports the child's result; the parent
// runs in parallel with the package's other tests.
func TestLoad(t *testing.T) {
	if os.Getenv(loadChildEnv) == "" {
		t.Parallel()
		args := []string{"-test.run=^TestLoad$", "-test.v", "-test.count=1"}
		if testing.Short() {
			args = append(args, "-test.short")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), loadChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "load_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		require.NoError(t, err, "the load test failed in its child process:\n%s", out)
		return
	}
	n := 1000
	if os.Getenv(loadFullEnv) != "" {
		n = 10_000
	}
	if v := os.Getenv(loadSizeEnv); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, loadSizeEnv)
	}
	require.GreaterOrEqual(t, n, 100)
	f := loadFigures{N: n}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "load.db"), &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		defer st.Close()
		api := &switchAPI{}
		eng, err := engine.Open(ctx, engine.Config{Store: st, API: api})
		require.NoError(t, err)
		defer eng.Close()
		f.HeapBefore = liveHeap()
		f.Goroutines[0] = runtime.NumGoroutine()
		start := time.Now()

		for round := 1; round <= 2; round++ {
			sim := providersim.New(providersim.Config{Seed: int64(round)})
			api.set(simClient(t, sim))
			reqs := requests("r"+strconv.Itoa(round), n/2)
			_, added, err := eng.SubmitMany(ctx, reqs)
			require.NoError(t, err)
			require.Equal(t, n/2, added)
			f.HeapPeak = max(f.HeapPeak, liveHeap())
			for {
				dctx, cancel := context.WithTimeout(ctx, 24*time.Hour)
				err := eng.Drain(dctx)
				cancel()
				require.NoError(t, err)
				if !eng.BreakerOpen() {
					break
				}
				_, err = eng.AccountFixed(ctx)
				require.NoError(t, err)
			}
			led := sim.Ledger()
			if round == 1 {
				// The whole store against the provider's books.
				rep, err := crashtest.Check(ctx, st, led, crashtest.Options{Refs: refsOf(reqs)})
				require.NoError(t, err)
				require.True(t, rep.OK(), strings.Join(rep.Violations, "\n"))
				f.BreakerTrips += rep.BreakerTrips
			} else {
				// Round 2's provider ids start again at the first: its
				// tasks are checked by ref, the whole store by replay.
				rep, err := crashtest.Check(ctx, st, providersim.Ledger{}, crashtest.Options{})
				require.NoError(t, err)
				for _, v := range rep.Violations {
					if !strings.Contains(v, "never issued") && !strings.Contains(v, "in.php requests") {
						t.Error(v)
					}
				}
				f.BreakerTrips = rep.BreakerTrips
				for _, r := range reqs {
					tk, err := st.GetByRef(ctx, r.Ref)
					require.NoError(t, err)
					require.True(t, tk.State.Terminal(), "%s: %s", r.Ref, tk.State)
				}
			}
			for _, c := range led.Bans {
				f.Bans += c
			}
			f.Charged += led.Charged()
			api.set(nil)
			sim, reqs, led = nil, nil, providersim.Ledger{} // garbage before the heap is measured
			if round == 1 {
				f.HeapRound1 = liveHeap()
				f.Goroutines[1] = runtime.NumGoroutine()
			} else {
				f.HeapRound2 = liveHeap()
				f.Goroutines[2] = runtime.NumGoroutine()
			}
		}
		f.VirtualSec = time.Since(start).Seconds()
		counts, err := st.Count(ctx)
		require.NoError(t, err)
		f.Done, f.Failed = counts[states.Done], counts[states.Failed]
		require.Equal(t, n, f.Done+f.Failed, "every task ended: %v", counts)
		list, err := st.List(ctx, persist.ListOptions{})
		require.NoError(t, err)
		require.Len(t, list, n, "none lost, none duplicated")
	})

	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n/2) }
	t.Logf("%d tasks (%d Done, %d Failed), %d breaker trips, %d charged, %d bans, %.0f s virtual", f.N, f.Done, f.Failed,
		f.BreakerTrips, f.Charged, f.Bans, f.VirtualSec)
	t.Logf("live heap: before %d KiB, peak %d KiB, after round 1 %d KiB (%+.0f B per task), after round 2 %d KiB (%+.0f B per task); goroutines %v",
		f.HeapBefore>>10, f.HeapPeak>>10, f.HeapRound1>>10, per(f.HeapRound1, f.HeapBefore),
		f.HeapRound2>>10, per(f.HeapRound2, f.HeapRound1), f.Goroutines)
	assert.Zero(t, f.Bans, "the provider's rate rules were never tripped")
	assert.Positive(t, f.BreakerTrips, "the default mix trips the breaker")
	assert.Equal(t, f.Goroutines[0], f.Goroutines[1], "no goroutine left behind by round 1")
	assert.Equal(t, f.Goroutines[0], f.Goroutines[2], "no goroutine left behind by round 2")
	// What a round may leave on the heap, measured with the simulator
	// detached: the capacity of the engine's map and queues (Go maps do
	// not shrink), caches filled once (encoding/json's, the machine's),
	// and bbolt's map of the pages in use (freelist allocs), which grows
	// with the database: 40-60 B per task kept, the whole of round 2's
	// growth in a heap profile. A leak of the tasks themselves would cost
	// several hundred bytes per task.
	half := uint64(n / 2)
	assert.LessOrEqual(t, f.HeapRound1, f.HeapBefore+128<<10+192*half, "heap retained after round 1")
	assert.LessOrEqual(t, f.HeapRound2, f.HeapRound1+32<<10+96*half, "a second round grows the heap: a leak")
	b, err := json.Marshal(f)
	require.NoError(t, err)
	t.Logf("%s%s", loadFiguresPrefix, b)
}
