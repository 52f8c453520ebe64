package fleettest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// EnvTasks sets the fleet test's size; unset, it solves 200 tasks (the
// issue's full run is CAPTCHAFSM_FLEET_TASKS=3000).
const EnvTasks = "CAPTCHAFSM_FLEET_TASKS"

const defaultTasks = 200

// EnvLogs names a directory to keep the engines' logs in (one JSON-lines
// file per engine); unset, they go to a temporary directory, and the last
// lines of each are shown when the test fails.
const EnvLogs = "CAPTCHAFSM_FLEET_LOGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(envChild); raw != "" {
		os.Exit(childMain(raw))
	}
	os.Exit(m.Run())
}

// TestFleet: three engine processes share one PostgreSQL database and one
// simulator. One is killed with SIGKILL a third of the way through and a
// replacement started; every task still ends terminal exactly once, and
// no provider task is polled by two engines except across the takeover of
// the dead engine's lease. Then the account runs dry: one engine's
// ERROR_ZERO_BALANCE opens the breaker of the whole fleet, and tasks the
// other engines take afterwards are parked without a request.
func TestFleet(t *testing.T) {
	n := defaultTasks
	if v := os.Getenv(EnvTasks); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, EnvTasks)
	}
	ctx := context.Background()
	store := pgstoretest.Open(t, nil)
	url := pgstoretest.URL(t)

	sim := providersim.New(providersim.Config{Seed: 8, Speed: 40, Mix: providersim.Mix{
		Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.03, "ERROR_BAD_PARAMETERS": 0.003},
		Poll:   map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.02},
	}})
	dir := os.Getenv(EnvLogs) // engines' logs: kept there when set
	if dir == "" {
		dir = t.TempDir()
	}
	f := &fleet{t: t, sim: sim, url: url, schema: store.Schema(), dir: dir, leaseTTL: 3 * time.Second}
	t.Cleanup(f.stopAll)

	tasks := make([]*persist.Task, n)
	for i := range tasks {
		ref := "task-" + strconv.Itoa(i)
		tasks[i] = &persist.Task{ID: persist.NewID(), Ref: ref, Method: "userrecaptcha", Params: map[string]string{
			"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/" + ref}}
	}
	// Engines started together claim in step (each claims once a second),
	// and the first of them would take every task: start them a third of
	// a second apart, as hosts would be, and let the batch arrive in ten
	// parts, 300 ms apart, as from a feeder. Each engine claims what has
	// arrived at its tick, so all three work at once and share the submit
	// rate.
	tick := time.NewTicker(333 * time.Millisecond)
	for i := range 3 {
		e := f.start("engine-" + strconv.Itoa(i))
		f.waitFor(time.Now().Add(30*time.Second), e.owner+" to run", e.running)
		<-tick.C
	}
	tick.Reset(300 * time.Millisecond)
	for lo := 0; lo < n; lo += max(n/10, 1) {
		require.NoError(t, store.Create(ctx, tasks[lo:min(lo+max(n/10, 1), n)]...))
		<-tick.C
	}
	tick.Stop()

	// A third of the way, kill -9 the engine that holds the most tasks.
	deadline := time.Now().Add(time.Duration(n)*200*time.Millisecond + time.Minute)
	f.waitFor(deadline, "a third of the tasks to end", func() bool {
		c, err := store.Count(ctx)
		require.NoError(t, err)
		return c[states.Done]+c[states.Failed] >= n/3
	})
	victim, held := f.busiest(ctx, store)
	require.NotEmpty(t, victim, "no engine holds a task a third of the way")
	killedAt := f.kill(victim)
	t.Logf("killed %s holding %d tasks at %d/%d", victim, held, f.ended(ctx, store), n)
	f.start("engine-3") // a supervisor restarts it

	f.waitFor(deadline, "every task to end", func() bool { return f.active(ctx, store) == 0 })
	led := sim.Ledger()
	f.checkEndedOnce(ctx, store, tasks, led)
	f.checkPollOwners(victim, killedAt, led)
	before := f.submitsBy(killedAt)
	t.Logf("in.php requests by engine before the kill: %v", before)
	assert.GreaterOrEqual(t, len(before), 2, "several engines submitted side by side")
	burst, gap := f.submitPace()
	t.Logf("fleet submits: at most %d in.php requests in any 3 s window (the provider bans a 61st); shortest gap %v", burst, gap)
	assert.Empty(t, led.Bans, "the fleet kept under the provider's rate rules (at most %d in 3 s)", burst)

	// The account runs dry: one submit trips the breaker of every engine.
	sim.SetBalance(0)
	phase2 := time.Now()
	first := &persist.Task{ID: persist.NewID(), Ref: "dry-first", Method: "userrecaptcha", Params: tasks[0].Params}
	require.NoError(t, store.Create(ctx, first))
	f.waitFor(time.Now().Add(30*time.Second), "the fleet's breaker to open", func() bool {
		c, err := store.Conditions(ctx)
		require.NoError(t, err)
		return c.BreakerOpen
	})
	cond, err := store.Conditions(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ERROR_ZERO_BALANCE", cond.BreakerCode)
	first, err = store.Get(ctx, first.ID)
	require.NoError(t, err)
	tripper := first.Owner
	require.NotEmpty(t, tripper)
	// Every other engine has seen the fleet's breaker (it says so in its
	// log) before the next tasks arrive.
	for _, e := range f.live() {
		if e.owner != tripper {
			f.waitFor(time.Now().Add(30*time.Second), e.owner+" to see the fleet's breaker", e.sawBreaker)
		}
	}
	const k = 20
	dry := make([]*persist.Task, k)
	tick = time.NewTicker(100 * time.Millisecond)
	for i := range dry {
		<-tick.C // the tasks trickle in, so that every engine claims some
		dry[i] = &persist.Task{ID: persist.NewID(), Ref: "dry-" + strconv.Itoa(i), Method: "userrecaptcha", Params: tasks[i].Params}
		require.NoError(t, store.Create(ctx, dry[i]))
	}
	tick.Stop()
	f.waitFor(time.Now().Add(30*time.Second), "the fleet to park every task", func() bool { return f.active(ctx, store) == 0 })

	owners := map[string]int{}
	for _, d := range dry {
		got, err := store.Get(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, states.NeedsAccountFix, got.State, d.Ref)
		owners[got.Owner]++
		hist, err := store.History(ctx, d.ID)
		require.NoError(t, err)
		assert.Equal(t, []transitions.Event{transitions.Created, transitions.BreakerOpen}, events(hist),
			"%s parked without a request", d.Ref)
	}
	t.Logf("parked tasks by engine: %v (breaker tripped by %s)", owners, tripper)
	assert.GreaterOrEqual(t, len(owners), 2, "tasks were parked by more than one engine")
	submits, zero := f.submitsSince(phase2)
	assert.Equal(t, 1, submits, "one in.php request in the whole fleet once the account ran dry")
	assert.Equal(t, 1, zero)

	// A clean stop: every live engine exits 0.
	for _, e := range f.live() {
		require.NoError(t, e.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, e := range f.live() {
		select {
		case <-e.exited:
			assert.NoError(t, e.waitErr, "%s exit", e.owner)
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop after SIGTERM", e.owner)
		}
	}
}

// fleet is the test's engine processes and the simulator they share, each
// engine behind a listener of its own (its tap), so that every request is
// known by the engine that sent it.
type fleet struct {
	t        *testing.T
	sim      *providersim.Sim
	url      string
	schema   string
	dir      string
	leaseTTL time.Duration

	mu      sync.Mutex
	engines []*proc
}

type proc struct {
	owner  string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	tap    *tap
	srv    *http.Server
	log    string
	killed bool

	mu         sync.Mutex
	started    bool // the engine said it runs
	breakerLog bool
	exited     chan struct{}
	waitErr    error
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *proc) sawBreaker() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.breakerLog
}

// start runs an engine process named owner.
func (f *fleet) start(owner string) *proc {
	t := f.t
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tp := &tap{owner: owner, sim: f.sim}
	srv := &http.Server{Handler: tp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	cfg, err := json.Marshal(childConfig{URL: f.url, Schema: f.schema, API: "http://" + ln.Addr().String(),
		Owner: owner, LeaseTTL: f.leaseTTL})
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(cfg))
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	p := &proc{owner: owner, cmd: cmd, stdin: stdin, tap: tp, srv: srv,
		log: filepath.Join(f.dir, owner+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.log)
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			p.mu.Lock()
			switch {
			case bytes.Contains(line, []byte(`"fleettest: engine running"`)):
				p.started = true
			case bytes.Contains(line, []byte(`"breaker opened by another engine"`)):
				p.breakerLog = true
			}
			p.mu.Unlock()
		}
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	f.mu.Lock()
	f.engines = append(f.engines, p)
	f.mu.Unlock()
	return p
}

// kill sends SIGKILL to the engine named owner, waits for it to die and
// returns when it was killed.
func (f *fleet) kill(owner string) time.Time {
	for _, p := range f.live() {
		if p.owner == owner {
			at := time.Now()
			require.NoError(f.t, p.cmd.Process.Signal(syscall.SIGKILL))
			<-p.exited
			p.killed = true
			return at
		}
	}
	f.t.Fatalf("no live engine %s", owner)
	return time.Time{}
}

func (f *fleet) live() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*proc
	for _, p := range f.engines {
		select {
		case <-p.exited:
		default:
			out = append(out, p)
		}
	}
	return out
}

// stopAll ends every engine process and listener, and shows the logs of a
// failed test.
func (f *fleet) stopAll() {
	f.mu.Lock()
	engines := f.engines
	f.mu.Unlock()
	for _, p := range engines {
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		_ = p.srv.Close()
		if f.t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				f.t.Logf("last log lines of %s:\n%s", p.owner, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	}
}

// waitFor polls cond every 100 ms until it holds, failing the test at
// deadline. The fleet runs in real time (processes, a database server),
// so the test cannot use a virtual clock; it waits on state, not on time.
func (f *fleet) waitFor(deadline time.Time, what string, cond func() bool) {
	f.t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func (f *fleet) active(ctx context.Context, s *pgstore.Store) int {
	c, err := s.Count(ctx)
	require.NoError(f.t, err)
	return c[states.Submitting] + c[states.Backoff] + c[states.Polling] + c[states.Resubmitting]
}

func (f *fleet) ended(ctx context.Context, s *pgstore.Store) int {
	c, err := s.Count(ctx)
	require.NoError(f.t, err)
	return c[states.Done] + c[states.Failed]
}

// busiest returns the live engine that holds the most unfinished tasks.
func (f *fleet) busiest(ctx context.Context, s *pgstore.Store) (string, int) {
	list, err := s.List(ctx, persist.ListOptions{States: []states.State{
		states.Submitting, states.Backoff, states.Polling, states.Resubmitting}}) // states.ActiveStates(), spelt out
	require.NoError(f.t, err)
	held := map[string]int{}
	for _, t := range list {
		if t.Owner != "" && t.LeaseUntil.After(time.Now()) {
			held[t.Owner]++
		}
	}
	best, most := "", 0
	for _, p := range f.live() {
		if held[p.owner] > most {
			best, most = p.owner, held[p.owner]
		}
	}
	return best, most
}

// checkEndedOnce: every task is Done or Failed, its history replays through
// the machine to that state, and it holds exactly one terminal move, the
// last. Every provider task the simulator charged for is in a history, and
// one charged but never polled is explained by a possibly charged record.
func (f *fleet) checkEndedOnce(ctx context.Context, s *pgstore.Store, tasks []*persist.Task, led providersim.Ledger) {
	t := f.t
	inHistory := map[string]bool{}
	charged, resubmits := 0, 0
	final := map[states.State]int{}
	for _, task := range tasks {
		got, err := s.Get(ctx, task.ID)
		require.NoError(t, err)
		require.True(t, got.State.Terminal(), "%s ended %s", task.Ref, got.State)
		final[got.State]++
		hist, err := s.History(ctx, task.ID)
		require.NoError(t, err)
		st, err := fsm.Replay(hist)
		require.NoError(t, err, task.Ref)
		require.Equal(t, got.State, st, task.Ref)
		terminal := 0
		for i, r := range hist {
			if r.To.Terminal() {
				terminal++
				require.Equal(t, len(hist)-1, i, "%s: a terminal move that is not the last", task.Ref)
			}
			if r.PossiblyCharged {
				charged++
			}
			if r.Event == transitions.SubmitAccepted {
				inHistory[r.ProviderID] = true
			}
		}
		require.Equal(t, 1, terminal, "%s ended %d times", task.Ref, terminal)
		resubmits += got.Resubmits
	}
	orphans := led.Orphaned()
	for _, tr := range led.Tasks {
		if !inHistory[strconv.FormatInt(tr.ID, 10)] {
			assert.Contains(t, orphans, tr.ID, "provider task %d is in no history but was polled", tr.ID)
		}
	}
	assert.LessOrEqual(t, len(orphans), charged, "every orphaned provider task is a possibly charged submit")
	assert.LessOrEqual(t, len(led.Duplicates()), resubmits+charged, "no captcha paid twice but for resubmits and takeovers")
	t.Logf("tasks: %v; provider tasks charged %d, orphaned %d; possibly charged records %d; resubmits %d",
		final, led.Charged(), len(orphans), charged, resubmits)
	assert.Greater(t, final[states.Done], len(tasks)*9/10)
}

// checkPollOwners: no provider task was polled by two engines, except the
// killed engine's tasks, polled by it before it died and by one other
// engine after.
func (f *fleet) checkPollOwners(victim string, killedAt time.Time, led providersim.Ledger) {
	t := f.t
	type poll struct {
		at    time.Time
		owner string
	}
	byID := map[int64][]poll{}
	counted := map[int64]int{}
	f.mu.Lock()
	engines := slices.Clone(f.engines)
	f.mu.Unlock()
	for _, p := range engines {
		p.tap.mu.Lock()
		for _, pr := range p.tap.polls {
			for _, id := range pr.ids {
				byID[id] = append(byID[id], poll{pr.at, p.owner})
				counted[id]++
			}
		}
		p.tap.mu.Unlock()
	}
	assert.Equal(t, led.Polls, counted, "the taps saw every poll the simulator answered")
	takenOver := 0
	for id, polls := range byID {
		slices.SortFunc(polls, func(a, b poll) int { return a.at.Compare(b.at) })
		var owners []string
		for _, p := range polls {
			if len(owners) == 0 || owners[len(owners)-1] != p.owner {
				owners = append(owners, p.owner)
			}
		}
		switch {
		case len(owners) == 1:
		case len(owners) == 2 && owners[0] == victim:
			takenOver++
			for _, p := range polls {
				if p.owner == victim {
					assert.True(t, p.at.Before(killedAt), "provider task %d polled by %s after it was killed", id, victim)
				}
			}
		default:
			t.Errorf("provider task %d polled by %v in turn: two owners at once", id, owners)
		}
	}
	t.Logf("provider tasks polled: %d; taken over from %s mid-poll: %d", len(byID), victim, takenOver)
}

// submitPace returns the most in.php requests the fleet sent within any
// 3 s and the shortest gap between two.
func (f *fleet) submitPace() (burst int, gap time.Duration) {
	f.mu.Lock()
	engines := slices.Clone(f.engines)
	f.mu.Unlock()
	var at []time.Time
	for _, p := range engines {
		p.tap.mu.Lock()
		for _, s := range p.tap.submits {
			at = append(at, s.at)
		}
		p.tap.mu.Unlock()
	}
	slices.SortFunc(at, time.Time.Compare)
	gap = time.Hour
	lo := 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= 3*time.Second {
			lo++
		}
		burst = max(burst, hi-lo+1)
		if hi > 0 {
			gap = min(gap, at[hi].Sub(at[hi-1]))
		}
	}
	return burst, gap
}

// submitsBy counts each engine's in.php requests before at.
func (f *fleet) submitsBy(at time.Time) map[string]int {
	f.mu.Lock()
	engines := slices.Clone(f.engines)
	f.mu.Unlock()
	out := map[string]int{}
	for _, p := range engines {
		p.tap.mu.Lock()
		for _, s := range p.tap.submits {
			if s.at.Before(at) {
				out[p.owner]++
			}
		}
		p.tap.mu.Unlock()
	}
	return out
}

// submitsSince counts the fleet's in.php requests since at, and those
// answered ERROR_ZERO_BALANCE.
func (f *fleet) submitsSince(at time.Time) (all, zeroBalance int) {
	f.mu.Lock()
	engines := slices.Clone(f.engines)
	f.mu.Unlock()
	for _, p := range engines {
		p.tap.mu.Lock()
		for _, s := range p.tap.submits {
			if !s.at.Before(at) {
				all++
				if s.answer == "ERROR_ZERO_BALANCE" {
					zeroBalance++
				}
			}
		}
		p.tap.mu.Unlock()
	}
	return all, zeroBalance
}

func events(hist []persist.Record) []transitions.Event {
	out := make([]transitions.Event, len(hist))
	for i, r := range hist {
		out[i] = r.Event
	}
	return out
}

// tap passes one engine's requests to the simulator and records them.
type tap struct {
	owner string
	sim   *providersim.Sim

	mu      sync.Mutex
	polls   []pollReq
	submits []submitReq
}

type pollReq struct {
	at  time.Time
	ids []int64
}

type submitReq struct {
	at     time.Time
	answer string
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	switch {
	case strings.HasSuffix(r.URL.Path, "res.php"):
		q := r.URL.Query()
		if a := q.Get("action"); a == "get" || a == "get2" {
			var ids []int64
			for _, v := range strings.Split(q.Get("id")+","+q.Get("ids"), ",") {
				if id, err := strconv.ParseInt(v, 10, 64); err == nil {
					ids = append(ids, id)
				}
			}
			tp.mu.Lock()
			tp.polls = append(tp.polls, pollReq{at, ids})
			tp.mu.Unlock()
		}
		tp.sim.ServeHTTP(w, r)
	case strings.HasSuffix(r.URL.Path, "in.php"):
		rec := &recorder{ResponseWriter: w}
		tp.sim.ServeHTTP(rec, r)
		var ans struct {
			Request string `json:"request"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &ans)
		tp.mu.Lock()
		tp.submits = append(tp.submits, submitReq{at, ans.Request})
		tp.mu.Unlock()
	default:
		tp.sim.ServeHTTP(w, r)
	}
}

// recorder keeps a copy of the body it writes.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
