package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/crashtest"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

const (
	// crashFullEnv turns on the long crash run (≥ 50 kills, 500 tasks).
	crashFullEnv = "CAPTCHAFSM_CRASH_FULL"
	// crashSeedEnv overrides the seed of the kill plan and the simulator.
	crashSeedEnv = "CAPTCHAFSM_CRASH_SEED"
	// crashFiguresPrefix marks the figures line in the test's log.
	crashFiguresPrefix = "crash-figures: "

	testKey = "0123456789abcdef0123456789abcdef"
)

// The ways a life of the engine ends with SIGKILL.
const (
	// modeAfterSubmit: the CLI's failpoint kills the process right after
	// the Nth in.php answer arrived, before the engine commits it.
	modeAfterSubmit = "after-submit"
	// modeCommit: the CLI's failpoint kills the process inside its Nth
	// transition commit (one Apply, possibly sharing a group commit).
	modeCommit = "commit"
	// modeHold: the simulator processes the Nth request of the life (a
	// submit is charged), then the test kills the engine before it gets
	// the answer.
	modeHold = "provider-holds-request"
	// modeRandom: the test kills the engine a random time after its first
	// request.
	modeRandom = "random-time"
)

// crashPlan sizes a run.
type crashPlan struct {
	tasks, kills int
	seed         uint64
}

// crashHarnessMix is the error guide's mix with the account error made
// frequent enough to trip the breaker in a run of a hundred tasks, and
// retries and resubmits frequent enough to be killed in the middle of.
func crashHarnessMix() providersim.Mix {
	return providersim.Mix{
		Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.05, "ERROR_BAD_PARAMETERS": 0.01, "ERROR_ZERO_BALANCE": 0.01},
		Poll:   map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.03},
	}
}

// crashPolicy is the engine's timing scaled to the simulator's speed, so
// that a life of the engine gets through work in a second or two.
const crashPolicy = `{"first_poll_delay": "100ms", "first_poll_delay_token": "400ms", "poll_interval": "150ms",
 "poll_timeout": "20s", "backoff_base": "100ms", "backoff_max": "500ms", "request_timeout": "5s",
 "retry_delays": {"ERROR_NO_SLOT_AVAILABLE": "150ms"}}`

// crashFigures are a run's measurements (docs/reliability.md).
type crashFigures struct {
	Seed        uint64         `json:"seed"`
	Tasks       int            `json:"tasks"`
	Batches     int            `json:"batches"`
	Lives       int            `json:"lives"`
	Kills       int            `json:"kills"`
	KillsByMode map[string]int `json:"kills_by_mode"`
	// CommitKillsOnPoll counts commit kills inside the commit of a poll
	// answer: the answers of one batched res.php request are committed
	// concurrently and share the store's group commits.
	CommitKillsOnPoll int `json:"commit_kills_on_poll_answer"`
	// AcceptedLost counts after-submit kills that lost an accepted
	// (charged) submit's answer.
	AcceptedLost int `json:"after_submit_kills_losing_an_accept"`
	// InDoubtAtKill sums, over the kills, the tasks whose history ended
	// with a submit intent when the process died.
	InDoubtAtKill int `json:"in_doubt_at_kill"`
	// InDoubtByMode splits InDoubtAtKill by the kill's mode: the kills
	// timed at a submit (after-submit, provider-holds-request) catch the
	// submits sent with it; a random-time kill is what a crash costs on
	// average.
	InDoubtByMode map[string]int `json:"in_doubt_by_mode"`
	// OrphanedByMode splits the orphaned paid tasks by the mode of the
	// kill that left them (the orphans counted right after it, less those
	// counted before).
	OrphanedByMode  map[string]int `json:"orphaned_by_mode"`
	AccountFixes    int            `json:"account_fixes"`
	Charged         int            `json:"charged"`
	Orphaned        int            `json:"orphaned"`
	PossiblyCharged int            `json:"possibly_charged_records"`
	Resent          int            `json:"resent_after_restart"`
	SubmitRequests  int            `json:"submit_requests"`
	RecordedSubmits int            `json:"recorded_submits"`
	BreakerTrips    int            `json:"breaker_trips"`
	States          map[string]int `json:"states"`
	WallSec         float64        `json:"wall_s"`
}

func (f crashFigures) perKill(n int) float64 { return float64(n) / float64(max(f.Kills, 1)) }

// harness runs the captchafsm binary against a simulator served by the
// test process, which outlives every kill of the engine.
type harness struct {
	t      *testing.T
	bin    string
	dir    string
	db     string
	env    []string
	sim    *providersim.Sim
	srv    *httptest.Server
	cur    atomic.Pointer[life]
	refs   []string // every ref of every batch so far
	batch  string   // the current batch file
	bRefs  []string // its refs
	nBatch int
}

func newHarness(t *testing.T, seed uint64) *harness {
	h := &harness{t: t, bin: binary(t), dir: t.TempDir()}
	h.db = filepath.Join(h.dir, "crash.db")
	h.sim = providersim.New(providersim.Config{Seed: int64(seed), Mix: crashHarnessMix(), Speed: 20})
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	pol := filepath.Join(h.dir, "policy.json")
	require.NoError(t, os.WriteFile(pol, []byte(crashPolicy), 0o600))
	h.env = []string{"CAPTCHAFSM_API_KEY=" + testKey, "CAPTCHAFSM_API_URL=" + h.srv.URL, "CAPTCHAFSM_DB=" + h.db}
	return h
}

func (h *harness) policyArgs() []string {
	return []string{"--policy", filepath.Join(h.dir, "policy.json")}
}

// serve is the simulator with a tap: it counts the current life's
// requests and, at the armed one, lets the simulator process it and kills
// the engine before the answer leaves.
func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	l := h.cur.Load()
	if l == nil {
		h.sim.ServeHTTP(w, r)
		return
	}
	n := l.requests.Add(1)
	l.firstOnce.Do(func() { close(l.first) })
	if l.killAt == 0 || n != l.killAt {
		h.sim.ServeHTTP(w, r)
		return
	}
	h.sim.ServeHTTP(httptest.NewRecorder(), r) // processed: a submit is charged
	l.kill()
	<-l.done // the engine is gone; its connection with it
	panic(http.ErrAbortHandler)
}

// addBatch writes a new batch file of n tasks.
func (h *harness) addBatch(n int) {
	h.nBatch++
	png := pngBase64(200)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	h.bRefs = nil
	for i := range n {
		ref := fmt.Sprintf("b%d-%04d", h.nBatch, i)
		var line struct {
			Method string            `json:"method"`
			Params map[string]string `json:"params"`
			Ref    string            `json:"ref"`
		}
		line.Ref = ref
		switch i % 3 {
		case 0:
			line.Method, line.Params = "base64", map[string]string{"body": png, "textinstructions": ref}
		case 1:
			line.Method, line.Params = "userrecaptcha", map[string]string{
				"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/login/" + ref}
		default:
			line.Method, line.Params = "turnstile", map[string]string{
				"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/signup/" + ref}
		}
		require.NoError(h.t, enc.Encode(line))
		h.bRefs = append(h.bRefs, ref)
	}
	h.batch = filepath.Join(h.dir, fmt.Sprintf("batch%d.jsonl", h.nBatch))
	require.NoError(h.t, os.WriteFile(h.batch, buf.Bytes(), 0o600))
	h.refs = append(h.refs, h.bRefs...)
}

// life is one process of the engine.
type life struct {
	cmd            *exec.Cmd
	started, done  chan struct{}
	first          chan struct{} // closed at the life's first request
	firstOnce      sync.Once
	killOnce       sync.Once
	requests       atomic.Int64
	killAt         int64 // modeHold: the request to kill at
	err            error
	stdout, stderr bytes.Buffer
}

// kill sends SIGKILL to the engine (once).
func (l *life) kill() {
	<-l.started
	l.killOnce.Do(func() { _ = l.cmd.Process.Kill() })
}

// lifeEnd is how a life ended.
type lifeEnd struct {
	killed bool // SIGKILL, from the test or a failpoint
	code   int  // exit status when not killed
	stderr string
	stdout string
}

// lifeTimeout bounds one life: a life that has not ended by then is a hung
// engine.
const lifeTimeout = 2 * time.Minute

// live runs one life of the engine with args, ended by mode (n is the
// failpoint's or the tap's count; d the random time), or by itself.
func (h *harness) live(args []string, mode string, n int64, d time.Duration) lifeEnd {
	t := h.t
	l := &life{started: make(chan struct{}), done: make(chan struct{}), first: make(chan struct{})}
	env := h.env
	switch mode {
	case modeAfterSubmit, modeCommit:
		env = append(env[:len(env):len(env)], fmt.Sprintf("CAPTCHAFSM_FAILPOINT=%s:%d", mode, n))
	case modeHold:
		l.killAt = n
	}
	l.cmd = exec.Command(h.bin, append(args, h.policyArgs()...)...)
	l.cmd.Env = childEnv(env)
	l.cmd.Stdout, l.cmd.Stderr = &l.stdout, &l.stderr
	h.cur.Store(l)
	defer h.cur.Store(nil)
	err := l.cmd.Start()
	close(l.started)
	require.NoError(t, err)
	go func() {
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	if mode == modeRandom {
		select {
		case <-l.first:
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
				l.kill()
			case <-l.done:
			}
			timer.Stop()
		case <-l.done:
		}
	}
	select {
	case <-l.done:
	case <-time.After(lifeTimeout):
		l.kill()
		<-l.done
		t.Fatalf("the engine (%v) did not end within %s:\n%s", args, lifeTimeout, l.stderr.String())
	}
	end := lifeEnd{stderr: l.stderr.String(), stdout: l.stdout.String()}
	var ee *exec.ExitError
	switch {
	case l.err == nil:
	case errors.As(l.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			end.killed = true
		} else {
			end.code = ee.ExitCode()
		}
	default:
		require.NoError(t, l.err)
	}
	return end
}

// snapshot is the database between two lives.
type snapshot struct {
	missing int // refs of the current batch not in the database
	active  int // tasks not settled
	parked  int // NeedsAccountFix
	inDoubt int // tasks whose history ends with a submit intent
}

// inspect opens the database between two lives (the dead engine's lock
// is gone) and checks every rule that holds at any moment.
func (h *harness) inspect(final bool) (snapshot, *crashtest.Report) {
	t := h.t
	ctx := context.Background()
	st, err := boltstore.Open(h.db, &boltstore.Options{LockTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer st.Close()
	var s snapshot
	for _, ref := range h.bRefs {
		if _, err := st.GetByRef(ctx, ref); errors.Is(err, persist.ErrNotFound) {
			s.missing++
		} else {
			require.NoError(t, err)
		}
	}
	list, err := st.List(ctx, persist.ListOptions{})
	require.NoError(t, err)
	for _, tk := range list {
		switch {
		case tk.State == states.NeedsAccountFix:
			s.parked++
		case !tk.State.Terminal():
			s.active++
			h, err := st.History(ctx, tk.ID)
			require.NoError(t, err)
			if transitions.InDoubt(h[len(h)-1].Event) {
				s.inDoubt++
			}
		}
	}
	opts := crashtest.Options{AllowParked: true, AllowUnsettled: true}
	if final {
		opts = crashtest.Options{Refs: h.refs}
	}
	rep, err := crashtest.Check(ctx, st, h.sim.Ledger(), opts)
	require.NoError(t, err)
	if !rep.OK() {
		t.Fatalf("invariants broken (final=%v):\n%s", final, strings.Join(rep.Violations, "\n"))
	}
	return s, rep
}

// TestCrashHarness kills the real captchafsm binary with SIGKILL many
// times while it solves a batch, restarts it with resume each time, and
// checks that nothing was lost, duplicated or paid for unannounced.
//
// Default: 100 tasks, 10 kills (4 and 40 with -short). With
// CAPTCHAFSM_CRASH_FULL=1: 500 tasks, 60 kills.
func TestCrashHarness(t *testing.T) {
	t.Parallel()
	plan := crashPlan{tasks: 100, kills: 10, seed: 1}
	if testing.Short() {
		plan.tasks, plan.kills = 40, 4
	}
	if os.Getenv(crashFullEnv) != "" {
		plan.tasks, plan.kills = 500, 60
	}
	if v := os.Getenv(crashSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, crashSeedEnv)
		plan.seed = s
	}
	start := time.Now()
	h := newHarness(t, plan.seed)
	rng := rand.New(rand.NewPCG(plan.seed, 0xc4a5))
	f := crashFigures{Seed: plan.seed, KillsByMode: map[string]int{}, InDoubtByMode: map[string]int{},
		OrphanedByMode: map[string]int{}}
	orphaned := 0 // as last counted
	h.addBatch(plan.tasks)
	maxLives := 4*plan.kills + 40
	for {
		snap, _ := h.inspect(false)
		if snap.missing == 0 && snap.active == 0 && snap.parked == 0 {
			if f.Kills >= plan.kills {
				break
			}
			// The batch ended before the plan's kills: another one.
			h.addBatch(max(plan.tasks/4, 20))
			snap.missing = len(h.bRefs)
		}
		f.Lives++
		require.LessOrEqual(t, f.Lives, maxLives, "too many lives without finishing the plan")
		args := []string{"resume", "--json"}
		if snap.missing > 0 || f.Lives%4 == 0 {
			// A batch not (wholly) recorded is run again; so is a whole
			// one now and then, which must add nothing.
			args = []string{"run", "--from", h.batch, "--json"}
		}
		mode, n, d := "", int64(0), time.Duration(0)
		if f.Kills < plan.kills {
			switch p := rng.Float64(); {
			case p < 0.3:
				mode, n = modeAfterSubmit, 1+rng.Int64N(20)
			case p < 0.6:
				mode, n = modeCommit, 1+rng.Int64N(120)
			case p < 0.8:
				mode, n = modeHold, 1+rng.Int64N(40)
			default:
				mode, d = modeRandom, time.Duration(rng.Int64N(int64(2*time.Second)))
			}
		}
		end := h.live(args, mode, n, d)
		switch {
		case end.killed:
			f.Kills++
			f.KillsByMode[mode]++
			if mode == modeCommit && (strings.Contains(end.stderr, string(transitions.NotReady)) ||
				strings.Contains(end.stderr, string(transitions.Solved)) || strings.Contains(end.stderr, string(transitions.ResubmitNeeded))) {
				f.CommitKillsOnPoll++
			}
			if mode == modeAfterSubmit && strings.Contains(end.stderr, "answer OK|") {
				f.AcceptedLost++
			}
			after, rep := h.inspect(false)
			f.InDoubtAtKill += after.inDoubt
			f.InDoubtByMode[mode] += after.inDoubt
			f.OrphanedByMode[mode] += rep.Orphaned - orphaned
			orphaned = rep.Orphaned
		case end.code == 3:
			r := runCLI(t, h.env, "account-fixed")
			require.Equal(t, 0, r.code, r.stderr)
			f.AccountFixes++
		case end.code == 0 || end.code == 2:
		default:
			t.Fatalf("life %d (%v, %s) ended with status %d:\n%s", f.Lives, args, mode, end.code, end.stderr)
		}
		if end.killed || end.code != 0 {
			assert.NotContains(t, end.stderr, "panic", "life %d", f.Lives)
		}
	}
	f.Batches = h.nBatch
	f.WallSec = time.Since(start).Seconds()

	// Every task ended, none lost or duplicated, the ledger accounted for.
	_, rep := h.inspect(true)
	f.Tasks, f.Charged, f.Orphaned = rep.Tasks, rep.Charged, rep.Orphaned
	f.PossiblyCharged, f.Resent = rep.PossiblyCharged, rep.ResentAfterRestart
	f.SubmitRequests, f.RecordedSubmits, f.BreakerTrips = rep.SubmitRequests, rep.RecordedSubmits, rep.BreakerTrips
	f.States = map[string]int{}
	for s, n := range rep.States {
		f.States[string(s)] = n
	}
	assert.Equal(t, len(h.refs), rep.Tasks)
	assert.GreaterOrEqual(t, f.Kills, plan.kills)
	for _, m := range []string{modeAfterSubmit, modeCommit} {
		assert.Positive(t, f.KillsByMode[m], "no kill by %s", m)
	}

	// The same through the CLI: replay, list and history.
	r := runCLI(t, h.env, "replay", "--all")
	require.Equal(t, 0, r.code, "replay --all: %s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("%d tasks replayed: %d OK, 0 MISMATCH", rep.Tasks, rep.Tasks))
	r = runCLI(t, h.env, "list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var list []struct {
		ID, Ref, State string
		Submits        int
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	seen := map[string]int{}
	for _, tk := range list {
		seen[tk.Ref]++
		assert.Contains(t, []string{"Done", "Failed"}, tk.State, "task %s", tk.ID)
	}
	for _, ref := range h.refs {
		assert.Equal(t, 1, seen[ref], "ref %s", ref)
	}
	assert.Len(t, list, len(h.refs))
	h.checkHistories(list)

	b, err := json.Marshal(f)
	require.NoError(t, err)
	t.Logf("%d kills survived (%v) over %d lives, %d tasks in %d batches, %.1f s", f.Kills, f.KillsByMode, f.Lives, f.Tasks, f.Batches, f.WallSec)
	t.Logf("orphaned paid tasks per kill %.3f (%d); extra submits per kill %.3f (%d resent after a restart); in doubt at a kill %.2f",
		f.perKill(f.Orphaned), f.Orphaned, f.perKill(f.Resent), f.Resent, f.perKill(f.InDoubtAtKill))
	for _, m := range []string{modeAfterSubmit, modeCommit, modeHold, modeRandom} {
		if k := f.KillsByMode[m]; k > 0 {
			t.Logf("%s kills: %d; in doubt at each %.2f, orphaned paid tasks per kill %.2f", m, k,
				float64(f.InDoubtByMode[m])/float64(k), float64(f.OrphanedByMode[m])/float64(k))
		}
	}
	t.Logf("%s%s", crashFiguresPrefix, b)
}

// checkHistories asks the CLI for the history of every task whose
// submits were possibly charged (at most 25): each must say so.
func (h *harness) checkHistories(list []struct {
	ID, Ref, State string
	Submits        int
}) {
	t := h.t
	ctx := context.Background()
	st, err := boltstore.Open(h.db, &boltstore.Options{LockTimeout: 5 * time.Second})
	require.NoError(t, err)
	want := map[string]int{}
	for _, tk := range list {
		hist, err := st.History(ctx, tk.ID)
		require.NoError(t, err)
		for _, r := range hist {
			if r.PossiblyCharged {
				want[tk.ID]++
			}
		}
	}
	require.NoError(t, st.Close())
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > 25 {
		ids = ids[:25]
	}
	for _, id := range ids {
		r := runCLI(t, h.env, "history", id, "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var hj struct {
			Task struct {
				PossiblyCharged int `json:"possibly_charged"`
			} `json:"task"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &hj))
		assert.Equal(t, want[id], hj.Task.PossiblyCharged, "history %s names its possibly-charged submits", id)
		r = runCLI(t, h.env, "history", id)
		assert.Contains(t, r.stdout, "possibly charged", "history %s", id)
	}
}

// TestFailpointSpec: a malformed CAPTCHAFSM_FAILPOINT is refused like any
// bad input (exit 1, one line naming the variable), before anything is
// opened or sent.
func TestFailpointSpec(t *testing.T) {
	t.Parallel()
	sim := providersim.New(providersim.Config{Seed: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks.jsonl")
	require.NoError(t, os.WriteFile(tasks, []byte(`{"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":"https://example.com"}}`+"\n"), 0o600))
	for _, spec := range []string{"bogus:1", "commit", "commit:0", "after-submit:x", "commit:1,nope:2"} {
		r := runCLI(t, []string{"CAPTCHAFSM_FAILPOINT=" + spec, "CAPTCHAFSM_API_KEY=" + testKey,
			"CAPTCHAFSM_API_URL=" + srv.URL, "CAPTCHAFSM_DB=" + filepath.Join(dir, "fp.db")}, "run", "--from", tasks)
		assert.Equal(t, 1, r.code, "%s: %s", spec, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "captchafsm: CAPTCHAFSM_FAILPOINT: "), "%s: %q", spec, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%s: one line", spec)
	}
	assert.Zero(t, sim.Ledger().Requests[providersim.KindSubmit])
	_, err := os.Stat(filepath.Join(dir, "fp.db"))
	assert.ErrorIs(t, err, os.ErrNotExist, "no database was created")
}
