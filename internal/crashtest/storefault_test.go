package crashtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// noAccountMix is the error guide's mix without ERROR_ZERO_BALANCE, whose
// breaker would park the batch until a person acts.
func noAccountMix() providersim.Mix {
	return providersim.Mix{
		Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.03, "ERROR_BAD_PARAMETERS": 0.003},
		Poll:   map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.01},
	}
}

// requests returns n tasks of the three kinds, each with its own content
// and ref (prefix-i).
func requests(prefix string, n int) []engine.Request {
	png := pngBase64(200)
	reqs := make([]engine.Request, n)
	for i := range reqs {
		ref := fmt.Sprintf("%s-%d", prefix, i)
		switch i % 3 {
		case 0:
			reqs[i] = engine.Request{Method: "base64", Params: map[string]string{"body": png, "textinstructions": ref}}
		case 1:
			reqs[i] = engine.Request{Method: "userrecaptcha", Params: map[string]string{
				"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/p/" + ref}}
		default:
			reqs[i] = engine.Request{Method: "turnstile", Params: map[string]string{
				"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/t/" + ref}}
		}
		reqs[i].Ref = ref
	}
	return reqs
}

func refsOf(reqs []engine.Request) []string {
	refs := make([]string, len(reqs))
	for i, r := range reqs {
		refs[i] = r.Ref
	}
	return refs
}

// simClient is a provider client on the simulator's in-process transport.
func simClient(t *testing.T, sim *providersim.Sim) *provider.Client {
	t.Helper()
	c, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: testKey, HTTPClient: sim.Client()})
	require.NoError(t, err)
	return c
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The two ways a commit fails.
const (
	// failClean: the write fails and nothing reaches the file (a failing
	// write, a full disk before the meta page).
	failClean = iota
	// failAfterWrite: the transaction reached the file, then fsync
	// reported an error: the store says "failed" about a commit that may
	// well be there after a restart.
	failAfterWrite
)

// errInjected is the error of an injected commit failure.
var errInjected = errors.New("injected I/O error")

// faultStore fails a share of its commits (Apply and Create) at random.
type faultStore struct {
	persist.Store
	mu     sync.Mutex
	rng    *rand.Rand
	p      float64
	mode   int
	failed atomic.Int64 // Apply calls failed (failAfterWrite: written, then failed)
}

func (s *faultStore) set(p float64) {
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
}

func (s *faultStore) draw() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.p
}

func (s *faultStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if !s.draw() {
		return s.Store.Apply(ctx, t, rec)
	}
	if s.mode == failAfterWrite {
		if err := s.Store.Apply(ctx, t, rec); err != nil {
			return err // refused (a stale copy): nothing to fail
		}
		s.failed.Add(1)
		return fmt.Errorf("boltstore: apply %s: commit: fsync: %w", t.ID, errInjected)
	}
	s.failed.Add(1)
	return fmt.Errorf("boltstore: apply %s: commit: write: %w", t.ID, errInjected)
}

func (s *faultStore) Create(ctx context.Context, tasks ...*persist.Task) error {
	if s.draw() && s.mode == failClean {
		return fmt.Errorf("boltstore: create: commit: write: %w", errInjected)
	}
	return s.Store.Create(ctx, tasks...)
}

// TestFailingCommits: 30 % of the commits fail, with nothing written
// (failClean) or after the write (failAfterWrite, an fsync error), for
// two minutes of a 300-task batch. The engine stops each failed step with
// an error that names the task and the cause, records nothing it did not
// make, keeps every rule meanwhile, and once the fault clears ends every
// task with the books straight.
func TestFailingCommits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mode int
	}{{"write fails", failClean}, {"fsync fails after the write", failAfterWrite}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				sim := providersim.New(providersim.Config{Seed: 3, Mix: noAccountMix()})
				inner, err := boltstore.Open(filepath.Join(t.TempDir(), "fault.db"), &boltstore.Options{NoSync: true})
				require.NoError(t, err)
				defer inner.Close()
				st := &faultStore{Store: inner, rng: rand.New(rand.NewPCG(5, uint64(tc.mode))), mode: tc.mode}
				var logs syncBuffer
				eng, err := engine.Open(ctx, engine.Config{Store: st, API: simClient(t, sim),
					Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				require.NoError(t, err)
				defer eng.Close()

				if tc.mode == failClean {
					// A batch whose creation fails is not there at all,
					// and nothing was sent for it.
					st.set(1)
					_, _, err := eng.SubmitMany(ctx, requests("lost", 5))
					require.ErrorIs(t, err, errInjected)
					n, err := inner.Count(ctx)
					require.NoError(t, err)
					assert.Empty(t, n)
					synctest.Wait()
					assert.Zero(t, sim.Ledger().Requests[providersim.KindSubmit])
				}
				st.set(0)
				reqs := requests("f", 300)
				_, _, err = eng.SubmitMany(ctx, reqs)
				require.NoError(t, err)
				st.set(0.3)
				<-time.After(2 * time.Minute)
				synctest.Wait()
				st.set(0)
				failed := st.failed.Load()
				require.Positive(t, failed)
				if tc.mode == failClean {
					assert.Equal(t, failed, eng.Stats().StoreErrors, "each failed commit is a store error of the engine")
				} else {
					// A copy gone stale by a commit reported failed is
					// refused at its next commit (ErrConflict) and reloaded.
					assert.Greater(t, eng.Stats().StoreErrors, failed)
				}
				assert.Contains(t, logs.String(), "transition not committed")
				assert.Contains(t, logs.String(), errInjected.Error(), "the log says why")
				// Meanwhile: every rule that holds at any moment.
				rep, err := crashtest.Check(ctx, inner, sim.Ledger(), crashtest.Options{AllowUnsettled: true})
				require.NoError(t, err)
				require.True(t, rep.OK(), "during the fault: %s", strings.Join(rep.Violations, "\n"))

				// Once the fault clears every task ends in the store, and
				// the books are straight.
				tick := time.NewTicker(10 * time.Second)
				defer tick.Stop()
				for deadline := time.Now().Add(time.Hour); ; <-tick.C {
					c, err := inner.Count(ctx)
					require.NoError(t, err)
					if c[states.Done]+c[states.Failed] == len(reqs) {
						break
					}
					require.True(t, time.Now().Before(deadline), "tasks still unfinished an hour after the fault: %v", c)
				}
				rep, err = crashtest.Check(ctx, inner, sim.Ledger(), crashtest.Options{Refs: refsOf(reqs)})
				require.NoError(t, err)
				assert.True(t, rep.OK(), strings.Join(rep.Violations, "\n"))
				assert.Greater(t, rep.States[states.Done], 250)
				t.Logf("%d commits failed; %s", failed, rep)

				// And the engine knows it: Drain returns.
				dctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				require.NoError(t, eng.Drain(dctx))

			})
		})
	}
}

// TestDiskFull runs a batch on a real bbolt file (fsync on) in a 2 MiB
// tmpfs, fills the file system to the last byte 20 s into the batch, lets
// the engine run into "no space left on device" for 3 minutes, then frees
// the space. It needs root (mount);
// without it the test skips.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	mnt := tmpfs(t, "2m")
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sim := providersim.New(providersim.Config{Seed: 8, Mix: noAccountMix()})
		path := filepath.Join(mnt, "full.db")
		st, err := boltstore.Open(path, nil)
		require.NoError(t, err)
		var logs syncBuffer
		eng, err := engine.Open(ctx, engine.Config{Store: st, API: simClient(t, sim),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		// The file must be closed before the tmpfs is unmounted, whatever
		// fails.
		defer func() {
			_ = eng.Close()
			_ = st.Close()
		}()
		reqs := requests("d", 300)
		_, _, err = eng.SubmitMany(ctx, reqs)
		require.NoError(t, err)

		<-time.After(20 * time.Second) // tasks in flight: some polling, some solved
		synctest.Wait()
		before, err := st.Count(ctx)
		require.NoError(t, err)
		filler := fill(t, filepath.Join(mnt, "filler"))
		<-time.After(3 * time.Minute)
		synctest.Wait()
		errs := eng.Stats().StoreErrors
		require.Positive(t, errs, "the full disk failed commits")
		assert.Contains(t, logs.String(), "no space left on device")
		rep, err := crashtest.Check(ctx, st, sim.Ledger(), crashtest.Options{AllowUnsettled: true})
		require.NoError(t, err)
		require.True(t, rep.OK(), "while the disk is full: %s", strings.Join(rep.Violations, "\n"))
		// bbolt reuses the pages its file already holds, so some commits
		// still succeed on the full disk: the tasks that need new pages wait.
		stuck := rep.Tasks - rep.States[states.Done] - rep.States[states.Failed]

		require.NoError(t, os.Remove(filler))
		dctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		require.NoError(t, eng.Drain(dctx), "every task ends once there is space")
		require.NoError(t, eng.Close())
		require.NoError(t, st.Close())

		// The file is whole: it opens again, and every rule holds.
		again, err := boltstore.Open(path, nil)
		require.NoError(t, err)
		defer again.Close()
		rep, err = crashtest.Check(ctx, again, sim.Ledger(), crashtest.Options{Refs: refsOf(reqs)})
		require.NoError(t, err)
		assert.True(t, rep.OK(), strings.Join(rep.Violations, "\n"))
		t.Logf("disk filled with tasks %v; %d commits failed on the full disk, %d tasks waited; after: %s", before, errs, stuck, rep)
	})
}

// tmpfs mounts a tmpfs of size under a temporary directory and unmounts
// it when the test ends; it skips the test when mounting is not allowed.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; run as root to test a full disk")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): skipping the full-disk test", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes name until the file system is full and returns its path.
func fill(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Create(name)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	// The last partial block too.
	for _, n := range []int{2048, 1024, 512, 256, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return name
}
