package cli

// Test-only failpoints. A crash test (internal/crashtest) kills the
// process from outside at random moments, but a random kill rarely lands
// on the two instants that matter most: right after an in.php answer
// arrived and before it is committed (the provider has charged a task the
// database does not know), and inside a store commit. With
//
//	CAPTCHAFSM_FAILPOINT=after-submit:N   (the Nth in.php answer, any outcome)
//	CAPTCHAFSM_FAILPOINT=commit:N         (the Nth transition commit)
//
// (comma-separated to arm both) the run, resume and solve commands kill
// their own process with SIGKILL at that point. A third failpoint slows
// instead of killing:
//
//	CAPTCHAFSM_FAILPOINT=slow-intent:MS   (each intent to submit commits up to MS ms late)
//
// as a group commit under load or a slow disk would: the time between a
// submit being scheduled and its request leaving grows. They wrap the engine's
// provider client and store and change nothing else; with the variable
// unset the wrappers are not installed. The variable is for tests: a user
// never sets it, and --help does not mention it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// EnvFailpoint arms the test-only failpoints (see failpoint.go).
const EnvFailpoint = "CAPTCHAFSM_FAILPOINT"

// failpoint holds the armed kill points and counts the events.
type failpoint struct {
	afterSubmit int64 // 0: not armed
	commit      int64
	submits     atomic.Int64
	commits     atomic.Int64
	// commitDelay is how long after the armed commit starts the kill
	// fires: drawn in [0, 2ms) from N, so that over many runs the kill
	// lands before, inside and just after the bbolt transaction.
	commitDelay time.Duration
	// slowIntent is the most each commit of an intent to submit is held
	// back (0: not armed).
	slowIntent time.Duration
}

// parseFailpoint reads the variable's value; "" means none armed (nil).
func parseFailpoint(spec string) (*failpoint, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	fp := &failpoint{}
	for _, part := range strings.Split(spec, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: want after-submit:N, commit:N or slow-intent:MS with N, MS ≥ 1", EnvFailpoint, part)
		}
		switch name {
		case "after-submit":
			fp.afterSubmit = n
		case "commit":
			fp.commit = n
			fp.commitDelay = time.Duration(rand.New(rand.NewPCG(uint64(n), 7)).Int64N(int64(2 * time.Millisecond)))
		case "slow-intent":
			fp.slowIntent = time.Duration(n) * time.Millisecond
		default:
			return nil, fmt.Errorf("%s: %q: unknown failpoint (want after-submit:N, commit:N or slow-intent:MS)", EnvFailpoint, name)
		}
	}
	return fp, nil
}

// failpoint returns the armed failpoints of $CAPTCHAFSM_FAILPOINT, or nil.
func (a *app) failpoint() (*failpoint, error) {
	fp, err := parseFailpoint(a.opts.getenv(EnvFailpoint))
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return fp, nil
}

// die kills the process with SIGKILL, as `kill -9` would: no deferred
// call, no engine shutdown, no flush. It never returns.
func die(what string) {
	fmt.Fprintf(os.Stderr, "captchafsm: failpoint %s: SIGKILL\n", what)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {} // the signal is on its way
}

// api wraps the engine's provider client; nil fp returns it as is.
func (fp *failpoint) api(c *provider.Client) engine.API {
	if fp == nil || fp.afterSubmit == 0 {
		return c
	}
	return &failpointAPI{Client: c, fp: fp}
}

// store wraps the engine's store; nil fp returns it as is.
func (fp *failpoint) store(s persist.Store) persist.Store {
	if fp == nil || (fp.commit == 0 && fp.slowIntent == 0) {
		return s
	}
	return &failpointStore{Store: s, fp: fp}
}

// failpointAPI kills the process once the armed in.php answer is back,
// before the engine can commit it. Poll and Cost are the client's.
type failpointAPI struct {
	*provider.Client
	fp *failpoint
}

func (f *failpointAPI) Submit(ctx context.Context, req provider.Request) (string, error) {
	id, err := f.Client.Submit(ctx, req)
	if f.fp.submits.Add(1) == f.fp.afterSubmit {
		outcome := "OK|" + id
		if err != nil {
			outcome = "error"
		}
		die(fmt.Sprintf("after-submit:%d (answer %s not committed)", f.fp.afterSubmit, outcome))
	}
	return id, err
}

// failpointStore kills the process during the armed commit (one Apply,
// which the store may share with concurrent ones in a group commit). The
// engine never sees that commit's outcome.
type failpointStore struct {
	persist.Store
	fp *failpoint
}

func (f *failpointStore) Apply(ctx context.Context, t *persist.Task, rec *persist.Record) error {
	if f.fp.slowIntent > 0 && rec.Event == transitions.SubmitSending {
		time.Sleep(rand.N(f.fp.slowIntent))
	}
	if f.fp.commits.Add(1) != f.fp.commit {
		return f.Store.Apply(ctx, t, rec)
	}
	what := fmt.Sprintf("commit:%d (%s %s→%s)", f.fp.commit, rec.Event, rec.From, rec.To)
	time.AfterFunc(f.fp.commitDelay, func() { die(what) })
	_ = f.Store.Apply(ctx, t, rec)
	die(what) // committed before the timer fired: still die before the engine acts
	return nil
}
