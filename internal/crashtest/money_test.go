package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/crashtest"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// tap serves the simulator and records when each in.php request arrives.
type tap struct {
	sim *providersim.Sim
	mu  sync.Mutex
	in  []time.Time
}

func (p *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/in.php") {
		p.mu.Lock()
		p.in = append(p.in, time.Now())
		p.mu.Unlock()
	}
	p.sim.ServeHTTP(w, r)
}

// busiest is the most in.php requests that arrived in any window of w.
func (p *tap) busiest(w time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	most, j := 0, 0
	for i := range p.in {
		for p.in[i].Sub(p.in[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// process is one run of the captchafsm binary.
type process struct {
	cmd            *exec.Cmd
	done           chan struct{}
	stdout, stderr bytes.Buffer
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary(t), args...), done: make(chan struct{})}
	p.cmd.Env = childEnv(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to end (at most d) and returns its exit
// status.
func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not end within %s\nstderr: %s", p.cmd.Args, d, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// term sends SIGTERM and waits for the process to end.
func (p *process) term(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	return p.wait(t, time.Minute)
}

// batchFile writes n tasks (refs prefix-0000...) and returns its path and
// the refs.
func batchFile(t *testing.T, dir, prefix string, n int) (string, []string) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	refs := make([]string, n)
	for i := range n {
		refs[i] = fmt.Sprintf("%s-%04d", prefix, i)
		line := map[string]any{"method": "turnstile", "ref": refs[i], "params": map[string]string{
			"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/" + refs[i]}}
		require.NoError(t, enc.Encode(line))
	}
	path := filepath.Join(dir, prefix+".jsonl")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path, refs
}

// waitFor polls cond every 50 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// TestDiskFullThroughCLI runs `captchafsm run` on a real bbolt file in a
// small tmpfs, fills the file system mid-batch, and then either lets the
// outage pass store_failure_limit (run stops, exit 4, naming the paid
// answers it could not record) or stops run with SIGTERM during it (exit
// 130, naming them too). Meanwhile no new in.php request leaves but those
// in flight when the disk filled. Once there is space, resume finishes
// every task: the paid answers that were not recorded are at most
// concurrency, and each is recorded as possibly charged (issue 11, point
// 1). bbolt reuses the pages its file holds, so on the full disk some
// commits still succeed: in.php goes on while every paid answer can be
// recorded, and stops at the first that cannot (TestStoreBreaker pins that
// bound in virtual time). It needs root (mount).
func TestDiskFullThroughCLI(t *testing.T) {
	t.Parallel()
	const concurrency = 8
	for _, tc := range []struct {
		name  string
		limit string
		term  bool
		exit  int
	}{
		{"outage past the limit", "4s", false, 4},
		{"stop during the outage", "2m", true, 130},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := tmpfs(t, "2m")
			dir := t.TempDir()
			sim := providersim.New(providersim.Config{Seed: 12, Mix: providersim.NoErrors(), Speed: 10})
			srv := httptest.NewServer(sim)
			defer srv.Close()
			db := filepath.Join(mnt, "full.db")
			pol := filepath.Join(dir, "policy.json")
			require.NoError(t, os.WriteFile(pol, []byte(fmt.Sprintf(`{"first_poll_delay": "500ms",
				"first_poll_delay_token": "1s", "poll_interval": "500ms", "concurrency": %d,
				"store_failure_limit": %q}`, concurrency, tc.limit)), 0o600))
			env := []string{"CAPTCHAFSM_API_KEY=" + testKey, "CAPTCHAFSM_API_URL=" + srv.URL, "CAPTCHAFSM_DB=" + db}
			file, refs := batchFile(t, dir, "full", 300)

			run := start(t, env, "run", "--from", file, "--policy", pol)
			waitFor(t, time.Minute, "tasks under way", func() bool { return sim.Ledger().Charged() >= 40 })
			filler := fill(t, filepath.Join(mnt, "filler"))
			atFault := sim.Ledger().Requests[providersim.KindSubmit]
			var code int
			if tc.term {
				<-time.After(3 * time.Second)
				code = run.term(t)
			} else {
				code = run.wait(t, time.Minute)
			}
			sent := sim.Ledger().Requests[providersim.KindSubmit] - atFault
			stderr := run.stderr.String()
			assert.Equal(t, tc.exit, code, "stderr: %s", stderr)
			assert.Contains(t, stderr, "no space left on device", "the outage is said on stderr")
			if strings.Contains(stderr, "paid") {
				assert.Contains(t, stderr, "possibly charged")
			}
			if !tc.term {
				assert.Contains(t, stderr, "failed for too long")
			}

			require.NoError(t, os.Remove(filler))
			res := start(t, env, "resume", "--policy", pol)
			assert.Equal(t, 0, res.wait(t, 2*time.Minute), "resume: %s", res.stderr.String())

			st, err := boltstore.Open(db, nil)
			require.NoError(t, err)
			defer st.Close()
			rep, err := crashtest.Check(context.Background(), st, sim.Ledger(), crashtest.Options{Refs: refs})
			require.NoError(t, err)
			assert.True(t, rep.OK(), strings.Join(rep.Violations, "\n"))
			assert.LessOrEqual(t, rep.Orphaned, concurrency, "paid but never recorded: at most concurrency")
			t.Logf("%s: exit %d, %d in.php after the disk filled, %s", tc.name, code, sent, rep)
		})
	}
}

// TestRestartsKeepThePace: `run` of 5,000 tasks stopped with SIGTERM after
// 1 s, `resume` stopped after 12 s, `resume` again, each intent to submit
// committed up to 500 ms late (the slow-intent failpoint: a loaded group
// commit): the simulator, its rate rules on, never answers MAX_USER_TURN. The engine lets 57 leave in any
// 3 s; they arrive a few milliseconds later each, so the busiest 3 s at
// the provider may hold one or two more: the margin left under its 60 is
// logged (issue 11, point 2).
func TestRestartsKeepThePace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sim := providersim.New(providersim.Config{Seed: 13, Mix: providersim.NoErrors(), Speed: 10})
	tp := &tap{sim: sim}
	srv := httptest.NewServer(tp)
	defer srv.Close()
	db := filepath.Join(dir, "pace.db")
	pol := filepath.Join(dir, "policy.json")
	require.NoError(t, os.WriteFile(pol, []byte(`{"first_poll_delay": "1s", "first_poll_delay_token": "2s", "poll_interval": "1s"}`), 0o600))
	env := []string{"CAPTCHAFSM_API_KEY=" + testKey, "CAPTCHAFSM_API_URL=" + srv.URL, "CAPTCHAFSM_DB=" + db,
		"CAPTCHAFSM_FAILPOINT=slow-intent:500"}
	file, _ := batchFile(t, dir, "pace", 5000)

	run := start(t, env, "run", "--from", file, "--policy", pol)
	waitFor(t, time.Minute, "the first submit", func() bool { return sim.Ledger().Requests[providersim.KindSubmit] > 0 })
	<-time.After(time.Second)
	assert.Equal(t, 130, run.term(t), run.stderr.String())
	for _, d := range []time.Duration{12 * time.Second, 8 * time.Second} {
		res := start(t, env, "resume", "--policy", pol)
		<-time.After(d)
		assert.Equal(t, 130, res.term(t), res.stderr.String())
	}
	led := sim.Ledger()
	most := tp.busiest(provider.SubmitBurstWindow)
	assert.Zero(t, led.Bans[provider.CodeSubmitBurst], "bans %v", led.Bans)
	assert.Zero(t, led.Answers[provider.CodeSubmitBurst])
	assert.Less(t, most, provider.SubmitBurst)
	assert.Greater(t, led.Requests[providersim.KindSubmit], 200, "the runs sent at pace")
	// submit_rate (20, the default) bounds every second where requests
	// leave; at the provider they arrive a few milliseconds late each, so
	// one more may share a second there.
	second := tp.busiest(time.Second)
	assert.LessOrEqual(t, second, 21, "busiest second at the provider")
	t.Logf("%d in.php over three lives; busiest 3 s at the provider: %d (limit %d, margin %d); busiest second: %d (submit_rate 20)",
		led.Requests[providersim.KindSubmit], most, provider.SubmitBurst, provider.SubmitBurst-most, second)
}
