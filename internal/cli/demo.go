package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// EnvDemoChild is set in the environment of demo --crash's child engine, so
// that a test binary standing in for captchafsm knows to run the CLI.
const EnvDemoChild = "CAPTCHAFSM_DEMO_CHILD"

type demoOpts struct {
	tasks int
	crash bool
	seed  int64
	speed float64
	every time.Duration // plain progress lines, off a terminal
}

func (a *app) demoCmd() *cobra.Command {
	o := &demoOpts{}
	c := &cobra.Command{
		Use:   "demo [--tasks N] [--db PATH] [--crash] [--seed N] [--speed F]",
		Short: "Solve a batch against the built-in simulator: no key, no network",
		Long: `The main job, with no key and no network: start the provider simulator on
127.0.0.1 with the error guide's mix (busy workers, an occasional empty
balance, bad parameters, unsolvable CAPTCHAs), and solve a batch of mixed
tasks (images, reCAPTCHA, hCaptcha, Turnstile) through the full engine into a
fresh database. Time runs --speed times faster than the provider's (solve
times, bans, and the engine's poll delays and backoffs alike); in.php stays at
the provider's real limit of 20 submits a second.

When an account error stops every submit (the circuit breaker), the demo plays
the person who fixes the account and runs account-fixed, so the batch ends.

It ends with a summary: tasks per final state, requests sent, retries,
resubmits, tasks charged and their cost, bans, possibly-charged submits, and the
commands to inspect a task and replay every history, written to work as they
are pasted: "go run ./cmd/captchafsm ..." after go run, else the program's
name on $PATH or its absolute path, with the database's absolute path.

--crash runs the engine in a child process, kills it with SIGKILL mid-batch,
restarts an engine on the same file and shows every task that was in flight
reach a terminal state.

--db PATH keeps the database there (the file must not exist yet); without it the
database goes to a new temporary directory, kept so that the printed commands
work. CAPTCHAFSM_DB is ignored: the demo never writes into your real database.`,
		Example: `  captchafsm demo
  captchafsm demo --crash
  captchafsm demo --tasks 1000 --db demo.db && captchafsm list --db demo.db --state Failed
  captchafsm demo --tasks 50 --seed 7 --json | jq .states`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return interrupted(cmd.Context(), a.demo(cmd, o)) },
	}
	f := c.Flags()
	f.IntVar(&o.tasks, "tasks", 200, "number of tasks in the batch")
	f.BoolVar(&o.crash, "crash", false, "kill the engine (SIGKILL) mid-batch, then restart it on the same file")
	f.Int64Var(&o.seed, "seed", 1, "seed of the simulator's draws and of the tasks")
	f.Float64Var(&o.speed, "speed", 20, "how many times faster than the provider time runs")
	f.DurationVar(&o.every, "progress-every", 2*time.Second, "interval of the progress lines when stdout is not a terminal")
	_ = f.MarkHidden("progress-every")
	return c
}

// demoPolicy is the default policy with every wait divided by speed. The
// submit rate is not scaled: the simulator's burst rule (60 in 3 s) runs on
// the real clock, as the provider's does.
func demoPolicy(speed float64) engine.Policy {
	return engine.Policy{}.Faster(speed).WithDefaults()
}

// policyFile writes p as a --policy file.
func policyFile(p engine.Policy) ([]byte, error) {
	delays := map[string]string{}
	for k, v := range p.RetryDelays {
		delays[k] = v.String()
	}
	return json.Marshal(map[string]any{
		"first_poll_delay": p.FirstPollDelay.String(), "first_poll_delay_token": p.FirstPollDelayToken.String(),
		"poll_interval": p.PollInterval.String(), "poll_timeout": p.PollTimeout.String(),
		"max_retries": p.MaxRetries, "backoff_base": p.BackoffBase.String(), "backoff_max": p.BackoffMax.String(),
		"max_resubmits": p.MaxResubmits, "request_timeout": p.RequestTimeout.String(),
		"concurrency": p.Concurrency, "submit_rate": p.SubmitRate, "retry_delays": delays,
	})
}

// demoTasks makes n tasks of mixed methods, the same for the same seed:
// 40% images, 25% reCAPTCHA v2, 20% hCaptcha, 15% Turnstile.
func demoTasks(n int, seed int64) []engine.Request {
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0xdec0))
	const keyChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	word := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = keyChars[rng.IntN(len(keyChars))]
		}
		return string(b)
	}
	reqs := make([]engine.Request, n)
	for i := range reqs {
		ref := fmt.Sprintf("demo-%04d", i+1)
		page := fmt.Sprintf("https://shop.example/checkout?cart=%d", 1000+i)
		var r engine.Request
		switch x := rng.IntN(100); {
		case x < 40:
			r = engine.Request{Method: "base64", Params: map[string]string{"body": base64.StdEncoding.EncodeToString(demoImage(rng))}}
		case x < 65:
			r = engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": "6Le" + word(37), "pageurl": page}}
		case x < 85:
			r = engine.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": strings.ToLower(word(8)) + "-" + strings.ToLower(word(4)), "pageurl": page}}
		default:
			r = engine.Request{Method: "turnstile", Params: map[string]string{"sitekey": "0x4AAAAAAA" + word(14), "pageurl": page}}
		}
		r.Ref = ref
		reqs[i] = r
	}
	return reqs
}

// demoImage is a small noisy grey PNG: a few hundred bytes, different
// every time, as the provider wants (100 B to 100 kB).
func demoImage(rng *mrand.Rand) []byte {
	img := image.NewGray(image.Rect(0, 0, 40, 14))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	img.SetGray(0, 0, color.Gray{Y: 0})
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

func newDemoKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// demoSummary is what the demo reports, also as --json.
type demoSummary struct {
	Tasks          int            `json:"tasks"`
	Seconds        float64        `json:"seconds"`
	States         map[string]int `json:"states"`
	FailedCodes    map[string]int `json:"failed_codes"`
	InPHP          int            `json:"in_php_requests"`
	ResPHP         int            `json:"res_php_requests"`
	Retries        int            `json:"retries"`
	Resubmits      int            `json:"resubmits"`
	BreakerTrips   int            `json:"breaker_trips"`
	Charged        int            `json:"tasks_charged"`
	Cost           float64        `json:"cost"`
	PossiblyCharge int            `json:"possibly_charged"`
	ProviderBans   int            `json:"provider_bans"`
	BansWaited     int            `json:"bans_waited"`
	NeverPolled    int            `json:"charged_never_polled"`
	ReplayOK       int            `json:"replay_ok"`
	ReplayBad      int            `json:"replay_mismatch"`
	DB             string         `json:"db"`
	Example        string         `json:"example_task"`
	Crash          *crashReport   `json:"crash,omitempty"`
}

// crashReport is what demo --crash saw around the kill.
type crashReport struct {
	SettledAtKill  int            `json:"settled_at_kill"`
	InFlight       int            `json:"in_flight_at_kill"`
	InFlightStates map[string]int `json:"in_flight_states"`
	MidSubmit      int            `json:"mid_submit_at_kill"`
	Finished       int            `json:"in_flight_finished"`
	Killed         bool           `json:"killed"`
}

func (a *app) demo(cmd *cobra.Command, o *demoOpts) error {
	if o.tasks < 1 || o.tasks > 100000 {
		return usageErr("--tasks %d: want 1 to 100000", o.tasks)
	}
	if math.IsNaN(o.speed) || o.speed < 1 || o.speed > 1000 {
		return usageErr("--speed %v: want 1 to 1000", o.speed)
	}
	if o.every <= 0 {
		return usageErr("--progress-every %s: must be positive", o.every)
	}
	ctx := cmd.Context()
	out := cmd.OutOrStdout()

	// The database: --db (only the flag: never $CAPTCHAFSM_DB), fresh.
	var dbPath, tmpDir string
	if f := a.root.PersistentFlags().Lookup("db"); f != nil && f.Changed {
		dbPath = a.db
		if fi, err := os.Stat(dbPath); err == nil && fi.Size() > 0 {
			return usageErr("--db %s: the file exists; the demo needs a fresh database (remove it or pick another path)", dbPath)
		}
	} else {
		dir, err := os.MkdirTemp("", "captchafsm-demo-")
		if err != nil {
			return fmt.Errorf("demo: temporary directory: %w", err)
		}
		tmpDir, dbPath = dir, filepath.Join(dir, "demo.db")
	}

	sim, err := providersim.Start(providersim.Config{Seed: o.seed, Speed: o.speed}, "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: start the simulator: %w", err)
	}
	defer sim.Close()
	key := newDemoKey()
	pol := demoPolicy(o.speed)
	client, err := provider.New(provider.Config{BaseURL: sim.URL, Key: key, Timeout: pol.RequestTimeout})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	reqs := demoTasks(o.tasks, o.seed)

	con := &console{out: out}
	if a.json {
		con.out = cmd.ErrOrStderr() // stdout holds the JSON summary alone
	} else {
		con.prog = out
		con.bar = a.opts.terminal(out)
		con.shared = true
		methods := map[string]int{}
		for _, r := range reqs {
			methods[r.Method]++
		}
		fmt.Fprintf(out, "captchafsm demo: %d tasks (%d images, %d reCAPTCHA, %d hCaptcha, %d Turnstile)\n",
			o.tasks, methods["base64"], methods["userrecaptcha"], methods["hcaptcha"], methods["turnstile"])
		fmt.Fprintf(out, "  simulator  %s  (error guide's mix, seed %d, time ×%g)\n", sim.URL, o.seed, o.speed)
		fmt.Fprintf(out, "  database   %s\n\n", dbPath)
	}

	start := time.Now()
	var crash *crashReport
	if o.crash {
		crash, err = a.demoCrash(ctx, cmd, o, con, sim.URL, key, pol, dbPath, reqs)
	} else {
		err = a.demoInProcess(ctx, con, client, pol, dbPath, reqs, o.every)
	}
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	sum, err := summarize(ctx, dbPath, sim.Sim.Ledger())
	if err != nil {
		return err
	}
	sum.Seconds = time.Since(start).Seconds()
	sum.Crash = crash
	if a.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(out, sum, tmpDir, currentInvocation(a.opts.Executable).command())
	}
	if crash != nil && crash.Finished < crash.InFlight {
		return &exitError{code: ExitFailed, err: fmt.Errorf("demo: %d of %d tasks in flight at the kill did not reach a terminal state",
			crash.InFlight-crash.Finished, crash.InFlight)}
	}
	if sum.ReplayBad > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("demo: %d histories do not replay to their stored state", sum.ReplayBad)}
	}
	return nil
}

// demoInProcess runs one engine in this process over the whole batch.
func (a *app) demoInProcess(ctx context.Context, con *console, client *provider.Client, pol engine.Policy,
	dbPath string, reqs []engine.Request, every time.Duration) error {
	store, err := openStoreAt(setting{dbPath, "--db"}, true, a.opts.lockTimeout())
	if err != nil {
		return err
	}
	defer store.Close()
	tr := newTracker()
	eng, err := engine.Open(ctx, engine.Config{Store: store, API: client, Policy: pol, OnTransition: tr.hook})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	m := startMeter(con, every, func() int { return len(reqs) }, tr.counts)
	if _, _, err := eng.SubmitMany(ctx, reqs); err != nil {
		m.end()
		_ = eng.Close()
		return fmt.Errorf("demo: submit: %w", err)
	}
	derr := demoDrive(ctx, eng, store, func(n int) {
		con.result(fmt.Sprintf("  breaker: an account error stopped every submit and parked %d tasks; the demo plays the person who fixes the account: account-fixed", n))
	})
	cerr := eng.Close()
	m.end()
	if derr != nil {
		return derr
	}
	return cerr
}

// demoDrive drains the engine; when the breaker parked tasks, it runs
// account-fixed (as the person would, after a top-up) and drains again.
func demoDrive(ctx context.Context, eng *engine.Engine, store persist.Store, onBreaker func(parked int)) error {
	for round := 0; ; round++ {
		if err := eng.Drain(ctx); err != nil {
			return err
		}
		c, err := store.Count(ctx)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		parked := c[states.NeedsAccountFix]
		if parked == 0 || round >= 20 {
			return nil
		}
		onBreaker(parked)
		if _, err := eng.AccountFixed(ctx); err != nil {
			return fmt.Errorf("demo: account fixed: %w", err)
		}
	}
}

// demoEngineCmd is the child engine of demo --crash: it records the tasks
// of --from, drives them, and writes one line per settled task for the
// parent ("settled ID STATE"), which kills it mid-batch.
func (a *app) demoEngineCmd() *cobra.Command {
	var from string
	c := &cobra.Command{
		Use:    "demo-engine --from FILE",
		Short:  "The child engine of demo --crash (internal)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(from)
			if err != nil {
				return usageErr("--from %s: %s", from, fsProblem(err))
			}
			reqs, err := readTasks(from, f)
			f.Close()
			if err != nil {
				return err
			}
			client, pol, err := a.client()
			if err != nil {
				return err
			}
			store, err := a.openStore(true)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			lines := make(chan string, 1<<16)
			hook := func(tr engine.Transition) {
				if tr.Record.To.Settled() {
					select {
					case lines <- "settled " + tr.Task.ID + " " + string(tr.Task.State):
					default:
					}
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for l := range lines {
					mu.Lock()
					fmt.Fprintln(out, l)
					mu.Unlock()
				}
			}()
			eng, err := engine.Open(ctx, engine.Config{Store: store, API: client, Policy: pol, OnTransition: hook})
			if err != nil {
				close(lines)
				<-done
				return err
			}
			ids, added, err := eng.SubmitMany(ctx, reqs)
			if err == nil {
				lines <- fmt.Sprintf("submitted %d %d", len(ids), added)
				err = demoDrive(ctx, eng, store, func(n int) { lines <- fmt.Sprintf("breaker %d", n) })
			}
			cerr := eng.Close()
			close(lines)
			<-done
			if err != nil {
				return err
			}
			return cerr
		},
	}
	c.Flags().StringVar(&from, "from", "", "JSON Lines file of tasks")
	return c
}

// demoCrash runs the batch in a child engine, kills it with SIGKILL once
// about 40% of the tasks settled, and restarts an engine on the same file.
func (a *app) demoCrash(ctx context.Context, cmd *cobra.Command, o *demoOpts, con *console, simURL, key string,
	pol engine.Policy, dbPath string, reqs []engine.Request) (*crashReport, error) {
	work, err := os.MkdirTemp("", "captchafsm-demo-work-")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(work)
	polFile, tasksFile := filepath.Join(work, "policy.json"), filepath.Join(work, "tasks.jsonl")
	pb, err := policyFile(pol)
	if err != nil {
		return nil, err
	}
	var tb bytes.Buffer
	enc := json.NewEncoder(&tb)
	for _, r := range reqs {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(polFile, pb, 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(tasksFile, tb.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	exe := a.opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("demo: cannot find this program to start the child engine: %w", err)
		}
	}

	// Phase 1: the child engine.
	child := exec.CommandContext(ctx, exe, "demo-engine", "--db", dbPath, "--api-url", simURL,
		"--policy", polFile, "--from", tasksFile)
	// The key travels in the environment, never on the command line.
	child.Env = append(os.Environ(), EnvAPIKey+"="+key, EnvDemoChild+"=1")
	var childErr bytes.Buffer
	child.Stderr = &childErr
	pipe, err := child.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := child.Start(); err != nil {
		return nil, fmt.Errorf("demo: start the child engine: %w", err)
	}
	total := len(reqs)
	threshold := max(1, total*2/5)
	con.result(fmt.Sprintf("  engine     child process %d; it will be killed (SIGKILL) once %d of %d tasks settled", child.Process.Pid, threshold, total))
	tr := newTracker()
	m := startMeter(con, o.every, func() int { return total }, tr.counts)
	rep := &crashReport{InFlightStates: map[string]int{}}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "settled":
			tr.add(engine.Task{ID: f[1], State: states.State(f[2])})
		case len(f) == 2 && f[0] == "breaker":
			con.result("  breaker: an account error stopped every submit and parked " + f[1] + " tasks; the demo plays the person who fixes the account: account-fixed")
		}
		if !rep.Killed && len(tr.counts()) > 0 && settledCount(tr.counts()) >= threshold && settledCount(tr.counts()) < total {
			if err := child.Process.Kill(); err == nil {
				rep.Killed = true
				break
			}
		}
	}
	_, _ = io.Copy(io.Discard, pipe)
	werr := child.Wait()
	m.end()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.SettledAtKill = settledCount(tr.counts())
	if !rep.Killed && werr != nil {
		return nil, fmt.Errorf("demo: the child engine failed: %v: %s", werr, lastLine(childErr.String()))
	}

	// Between the lives: what the dead engine left in flight.
	store, err := openStoreAt(setting{dbPath, "--db"}, false, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	inflight, err := store.List(ctx, persist.ListOptions{States: append(activeStates[:len(activeStates):len(activeStates)], states.NeedsAccountFix)})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	rep.InFlight = len(inflight)
	for _, t := range inflight {
		rep.InFlightStates[string(t.State)]++
		if t.State == states.Submitting {
			if h, err := store.History(ctx, t.ID); err == nil && inFlight(h) {
				rep.MidSubmit++
			}
		}
	}
	if rep.Killed {
		con.result(fmt.Sprintf("\nKILLED     the engine, SIGKILL, with %d of %d tasks settled", rep.SettledAtKill, total))
	} else {
		con.result(fmt.Sprintf("\nthe child engine finished before the kill point (%d of %d settled)", rep.SettledAtKill, total))
	}
	con.result(fmt.Sprintf("  in flight  %d tasks: %s", rep.InFlight, stateList(rep.InFlightStates)))
	con.result(fmt.Sprintf("  on the wire %d submits were sent with no answer recorded: resume records them as possibly charged", rep.MidSubmit))
	con.result("RESTART    a new engine opens the same file and continues every task where it stopped\n")

	// Phase 2: a new engine on the same file.
	client, err := provider.New(provider.Config{BaseURL: simURL, Key: key, Timeout: pol.RequestTimeout})
	if err != nil {
		return nil, err
	}
	tr2 := newTracker()
	all, err := store.List(ctx, persist.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, t := range all {
		if t.State.Settled() {
			tr2.add(engine.TaskOf(t))
		}
	}
	tr2.take()
	eng, err := engine.Open(ctx, engine.Config{Store: store, API: client, Policy: pol, OnTransition: tr2.hook})
	if err != nil {
		return nil, fmt.Errorf("demo: restart: %w", err)
	}
	m2 := startMeter(con, o.every, func() int { return total }, tr2.counts)
	derr := demoDrive(ctx, eng, store, func(n int) {
		con.result(fmt.Sprintf("  breaker: an account error stopped every submit and parked %d tasks; the demo plays the person who fixes the account: account-fixed", n))
	})
	cerr := eng.Close()
	m2.end()
	if derr != nil {
		return nil, derr
	}
	if cerr != nil {
		return nil, cerr
	}
	ended := map[string]int{}
	for _, t := range inflight {
		now, err := store.Get(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if now.State.Terminal() {
			rep.Finished++
			ended[string(now.State)]++
		}
	}
	con.result(fmt.Sprintf("\nRECOVERED  %d of %d tasks in flight at the kill reached a terminal state: %s\n", rep.Finished, rep.InFlight, stateList(ended)))
	return rep, nil
}

func settledCount(c map[states.State]int) int {
	return c[states.Done] + c[states.Failed] + c[states.NeedsAccountFix]
}

func stateList(c map[string]int) string {
	if len(c) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range states.All() {
		if n := c[string(s)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// summarize reads the outcome from the database (the truth across both
// lives of a crashed run) and the simulator's ledger.
func summarize(ctx context.Context, dbPath string, l providersim.Ledger) (*demoSummary, error) {
	store, err := boltstore.Open(dbPath, &boltstore.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return nil, storeErr(setting{dbPath, "--db"}, err)
	}
	defer store.Close()
	tasks, err := store.List(ctx, persist.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	s := &demoSummary{Tasks: len(tasks), States: map[string]int{}, FailedCodes: map[string]int{}, DB: dbPath,
		InPHP: l.Requests[providersim.KindSubmit], ResPHP: l.Requests[providersim.KindPoll] + l.Requests[providersim.KindGet2],
		Charged: l.Charged(), Cost: l.Cost, NeverPolled: len(l.Orphaned())}
	for _, n := range l.Bans {
		s.ProviderBans += n
	}
	best := -1
	for _, t := range tasks {
		s.States[string(t.State)]++
		if t.State == states.Failed {
			s.FailedCodes[t.Code]++
		}
		s.Retries += t.Retries
		s.Resubmits += t.Resubmits
		h, err := store.History(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		score := 0
		for _, r := range h {
			switch {
			case r.PossiblyCharged:
				s.PossiblyCharge++
				score += 100
			case r.Event == transitions.RateLimited:
				s.BansWaited++
			case r.Event == transitions.AccountError:
				s.BreakerTrips++
			}
		}
		if replayed, err := fsm.Replay(h); err == nil && replayed == t.State {
			s.ReplayOK++
		} else {
			s.ReplayBad++
		}
		// The example to inspect: the task with the most eventful life.
		score += 10*t.Resubmits + 5*t.Retries + len(h)
		if t.State == states.Done {
			score++
		}
		if score > best {
			best, s.Example = score, t.ID
		}
	}
	return s, nil
}

// printSummary writes the summary and the commands to inspect the
// database; self is the shell words that run this program from here (see
// invocation.command), so that each command works as it is printed.
func printSummary(w io.Writer, s *demoSummary, tmpDir, self string) {
	fmt.Fprintln(w, "\nSUMMARY")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v, note string) { fmt.Fprintf(tw, "  %s\t%s\t%s\n", k, v, note) }
	row("tasks", strconv.Itoa(s.Tasks), fmt.Sprintf("in %.1fs", s.Seconds))
	for _, st := range []states.State{states.Done, states.Failed, states.NeedsAccountFix} {
		note := ""
		if st == states.Failed && len(s.FailedCodes) > 0 {
			codes := make([]string, 0, len(s.FailedCodes))
			for c := range s.FailedCodes {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			for i, c := range codes {
				codes[i] = fmt.Sprintf("%s ×%d", c, s.FailedCodes[c])
			}
			note = strings.Join(codes, ", ")
		}
		row("  "+string(st), strconv.Itoa(s.States[string(st)]), note)
	}
	row("requests sent", fmt.Sprintf("%d in.php", s.InPHP), fmt.Sprintf("%d res.php (polls batched, up to 100 ids each)", s.ResPHP))
	row("retries", strconv.Itoa(s.Retries), "transient errors waited out (the code's delay, or backoff with jitter)")
	row("resubmits", strconv.Itoa(s.Resubmits), "new tasks after ERROR_CAPTCHA_UNSOLVABLE")
	row("breaker trips", strconv.Itoa(s.BreakerTrips), "account errors that stopped every submit until account-fixed")
	row("tasks charged", strconv.Itoa(s.Charged), fmt.Sprintf("cost %.5f (simulated)", s.Cost))
	row("possibly charged", strconv.Itoa(s.PossiblyCharge), "submits that may have been billed with no answer recorded")
	row("charged, never polled", strconv.Itoa(s.NeverPolled), "paid for and lost")
	banNote := "none: submit_rate keeps in.php under the provider's 60 per 3 s"
	if s.ProviderBans > 0 {
		banNote = "bans the provider started (MAX_USER_TURN, ERROR: 100x); the engine paused for each"
	}
	row("provider bans", strconv.Itoa(s.ProviderBans), banNote)
	row("bans waited out", strconv.Itoa(s.BansWaited), "")
	row("replay", fmt.Sprintf("%d/%d", s.ReplayOK, s.Tasks), "histories that re-derive their stored state through the machine")
	_ = tw.Flush()
	path := s.DB
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // the commands work from any directory
	}
	db := shellQuote(path)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Inspect one task:   %s history %s --db %s\n", self, s.Example, db)
	fmt.Fprintf(w, "Replay them all:    %s replay --all --db %s\n", self, db)
	fmt.Fprintf(w, "List the failures:  %s list --state Failed --db %s\n", self, db)
	if tmpDir != "" {
		fmt.Fprintf(w, "The database is kept in a temporary directory; remove it with: rm -r %s\n", shellQuote(tmpDir))
	}
}
