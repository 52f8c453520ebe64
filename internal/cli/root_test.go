package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

func TestMain(m *testing.M) {
	// demo --crash starts os.Executable() as its child engine: in tests,
	// this binary, which then plays captchafsm.
	if os.Getenv(EnvDemoChild) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m,
		// Keep-alive connections of HTTP clients close asynchronously
		// after the simulator's listener is gone.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testKey is the API key of the tests; no output may ever contain it.
const testKey = "5f3c9a0e7d1b4c2a8e6f0d9b3a7c1e5f"

// fastPolicy makes every wait tiny so that solves take milliseconds.
const fastPolicy = `{"first_poll_delay":"10ms","first_poll_delay_token":"10ms","poll_interval":"10ms",
 "poll_timeout":"5s","backoff_base":"5ms","backoff_max":"20ms",
 "retry_delays":{"ERROR_NO_SLOT_AVAILABLE":"5ms","MAX_USER_TURN":"10ms"}}`

// world is one test's environment: a directory, a database path, a
// policy file, environment variables and (optionally) a simulator.
type world struct {
	t      *testing.T
	dir    string
	db     string
	policy string
	env    map[string]string
	sim    *providersim.Server
	// ttyErr makes the commands take their stderr for a terminal (the
	// injected detector; stdout stays a file).
	ttyErr bool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, db: filepath.Join(dir, "test.db"), env: map[string]string{}}
	w.policy = w.file("policy.json", fastPolicy)
	w.env[EnvDB] = w.db
	w.env[EnvAPIKey] = testKey
	w.env[EnvAPIURL] = "http://127.0.0.1:1" // nothing listens: a test must start a simulator to send
	return w
}

// withSim starts a simulator on loopback and points the environment at it.
func (w *world) withSim(cfg providersim.Config) *world {
	w.t.Helper()
	if cfg.Speed == 0 {
		cfg.Speed = 1000
	}
	srv, err := providersim.Start(cfg, "127.0.0.1:0")
	require.NoError(w.t, err)
	w.t.Cleanup(srv.Close)
	w.sim = srv
	w.env[EnvAPIURL] = srv.URL
	return w
}

func (w *world) file(name, content string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	require.NoError(w.t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// result is one command's outcome.
type result struct {
	out, err string
	code     int
}

// run executes the command line through cobra with the world's
// environment and returns its outputs and exit status. No output may hold
// the API key.
func (w *world) run(args ...string) result {
	w.t.Helper()
	return w.runCtx(context.Background(), nil, args...)
}

func (w *world) runCtx(ctx context.Context, stdin io.Reader, args ...string) result {
	w.t.Helper()
	var out, errb bytes.Buffer
	root := w.rootFor(&errb)
	root.SetOut(&out)
	root.SetErr(&errb)
	if stdin != nil {
		root.SetIn(stdin)
	}
	code := Execute(ctx, root, args)
	r := result{out: out.String(), err: errb.String(), code: code}
	assertNoKey(w.t, r.out, r.err)
	return r
}

func (w *world) root() *cobra.Command { return w.rootFor(nil) }

// rootFor is root with errw (the command's stderr) taken for a terminal
// when the world says so.
func (w *world) rootFor(errw io.Writer) *cobra.Command {
	env := w.env
	tty := w.ttyErr
	return NewRoot(&Options{
		Getenv:      func(k string) string { return env[k] },
		Terminal:    func(x io.Writer) bool { return tty && errw != nil && x == errw },
		LockTimeout: 50 * time.Millisecond,
	})
}

func assertNoKey(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		require.NotContains(t, strings.ToLower(o), testKey, "an output holds the API key")
	}
}

// store opens the world's database for a look behind the CLI's back.
func (w *world) store() *boltstore.Store {
	w.t.Helper()
	s, err := boltstore.Open(w.db, nil)
	require.NoError(w.t, err)
	return s
}

func (w *world) tasks() []*persist.Task {
	w.t.Helper()
	s := w.store()
	defer s.Close()
	list, err := s.List(context.Background(), persist.ListOptions{})
	require.NoError(w.t, err)
	return list
}

// requests is how many requests the simulator received.
func (w *world) requests() int {
	if w.sim == nil {
		return 0
	}
	n := 0
	for _, c := range w.sim.Sim.Ledger().Requests {
		n += c
	}
	return n
}

func decodeLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		out = append(out, m)
	}
	return out
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	t.Parallel()
	root := NewRoot(nil)
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			seen++
			assert.NotEmpty(t, sub.Short, sub.Name())
			assert.NotEmpty(t, sub.Long, sub.Name())
			assert.Contains(t, sub.Example, "captchafsm "+sub.Name(), "%s: examples should show the command", sub.Name())
			w := newWorld(t)
			r := w.run(sub.Name(), "--help")
			assert.Equal(t, ExitOK, r.code, sub.Name())
			assert.Contains(t, r.out, "Examples:", sub.Name())
			walk(sub)
		}
	}
	walk(root)
	want := []string{"demo", "solve", "run", "resume", "account-fixed", "list", "history", "replay",
		"errors", "diagram", "simulate", "balance", "report", "prune", "serve", "gateway"}
	assert.Equal(t, len(want), seen)
	for _, name := range want {
		c, _, err := root.Find([]string{name})
		require.NoError(t, err, name)
		assert.Equal(t, name, c.Name())
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"list", "--nosuch"}, "unknown flag: --nosuch"},
		{[]string{"history"}, "want one task id or ref"},
		{[]string{"list", "extra"}, `unexpected argument "extra"`},
		{[]string{"solve", "--tasks", "3"}, "unknown flag: --tasks"},
	} {
		w := newWorld(t)
		r := w.run(tc.args...)
		assert.Equal(t, ExitUsage, r.code, tc.args)
		assert.Contains(t, r.err, tc.want, tc.args)
		assert.Equal(t, 1, strings.Count(r.err, "\n"), "one line: %q", r.err)
		assert.Empty(t, r.out)
	}
}

// TestConfigPrecedence: flags, then the environment, then defaults.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// Environment names a missing file: list says which one and from where.
	r := w.run("list")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, EnvDB+" "+w.db+": no such file")

	// The flag beats the environment.
	other := filepath.Join(w.dir, "other.db")
	r = w.run("list", "--db", other)
	assert.Contains(t, r.err, "--db "+other+": no such file")

	// Without either, the default.
	delete(w.env, EnvDB)
	root := w.root()
	a := &app{opts: Options{Getenv: func(string) string { return "" }}, root: root}
	assert.Equal(t, setting{DefaultDB, "default db"}, a.dbPath())
	assert.Equal(t, setting{DefaultAPIURL, "default api-url"}, a.apiBase())

	// The API URL: a malformed one is named with its source.
	w.env[EnvAPIURL] = "ftp://x"
	r = w.run("balance")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, EnvAPIURL+` "ftp://x": must be an absolute http(s) URL`)
	r = w.run("balance", "--api-url", "nope")
	assert.Contains(t, r.err, `--api-url "nope"`)
}

func TestKeyChecks(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{})
	bad := "not-a-key-but-a-secret-all-the-same"
	w.env[EnvAPIKey] = bad
	r := w.run("balance")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, EnvAPIKey+": the key must be 32 hex characters")
	assert.NotContains(t, r.err+r.out, bad)

	delete(w.env, EnvAPIKey)
	r = w.run("balance")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "no API key: set "+EnvAPIKey+" or pass --key-file FILE")

	// --key-file wins over the environment; its content is never echoed.
	w.env[EnvAPIKey] = bad
	kf := w.file("key", testKey+"\n")
	r = w.run("balance", "--key-file", kf)
	assert.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, "100\n", r.out)

	badFile := w.file("badkey", bad)
	r = w.run("balance", "--key-file", badFile)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "--key-file "+badFile+": the key must be 32 hex characters")
	assert.NotContains(t, r.err, bad)

	r = w.run("balance", "--key-file", filepath.Join(w.dir, "missing"))
	assert.Contains(t, r.err, "missing: no such file")
	assert.Equal(t, 1, w.requests(), "only the one good balance request was sent")
}

func TestPolicyErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ policy, want string }{
		{`{"poll_interval": "soon"}`, `poll_interval: "soon" is not a duration`},
		{`{"pol_interval": "5s"}`, `unknown key "pol_interval"`},
		{`{"concurrency": 0}`, "concurrency"},
		{`{"submit_rate": 1e-9}`, "submit_rate: must be at least 0.01 per second, one submit every 1m40s (got 1e-09: one every 31.7 years)"},
		{`{"poll_interval": "1ns"}`, "poll_interval: must be between 1ms and 10m0s (got 1ns)"},
		{`{"poll_timeout": "876000h"}`, "poll_timeout: must be between 1ms and 1h0m0s (got 876000h0m0s)"},
		{`[1]`, "not a JSON object"},
	} {
		w := newWorld(t).withSim(providersim.Config{})
		p := w.file("p.json", tc.policy)
		r := w.run("solve", "--method", "hcaptcha", "--param", "sitekey=x", "--param", "pageurl=https://a.example", "--policy", p)
		assert.Equal(t, ExitUsage, r.code, tc.policy)
		assert.Contains(t, r.err, "--policy "+p+": "+tc.want)
		assert.Zero(t, w.requests(), "nothing sent")
		_, err := os.Stat(w.db)
		assert.ErrorIs(t, err, os.ErrNotExist, "no database created on bad input")
	}
}

// TestHelpSaysThePolicyBounds: the root help (and so docs/cli.md) lists
// every policy key with its default and bounds, from the engine's data.
func TestHelpSaysThePolicyBounds(t *testing.T) {
	t.Parallel()
	r := newWorld(t).run("--help")
	require.Equal(t, ExitOK, r.code)
	for _, b := range engine.PolicyBounds() {
		assert.Regexp(t, `(?m)^  `+b.Key+` +\S.* +`+regexp.QuoteMeta(b.Min)+` +`+regexp.QuoteMeta(b.Max)+`\b`, r.out)
	}
	assert.Regexp(t, `(?m)^  submit_rate +20 +0\.01 +20 `, r.out)
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "a b c", oneLine("a\n b\t\tc\n"))
}

// TestDrivingCommandsSayEveryExitStatus: solve, run and resume can end
// with every exit status of the contract (a store outage past
// store_failure_limit is exit 4 for each, a missing or bad database exit 1
// for resume), and a script reads them from the help: each command's help
// names every one.
func TestDrivingCommandsSayEveryExitStatus(t *testing.T) {
	t.Parallel()
	statuses := []int{ExitOK, ExitUsage, ExitFailed, ExitNeedsAccountFix, ExitStoreFailed, ExitInterrupted}
	for _, name := range []string{"solve", "run", "resume"} {
		cmd, _, err := NewRoot(nil).Find([]string{name})
		require.NoError(t, err)
		long := strings.Join(strings.Fields(cmd.Long), " ")
		i := strings.Index(strings.ToLower(long), "exit status")
		if !assert.True(t, i >= 0, "%s --help says no exit status", name) {
			continue
		}
		for _, code := range statuses {
			assert.Regexp(t, regexp.MustCompile(`(^|[ ,;:])`+strconv.Itoa(code)+` `), long[i:],
				"%s --help does not say exit status %d", name, code)
		}
	}
}
