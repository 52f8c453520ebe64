package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/captchafsm/captchafsm/provider"
)

// Exit statuses of the contract. solve, run and resume use all of them;
// the other commands end with ExitOK or ExitUsage (replay also with
// ExitFailed on a mismatch).
const (
	// ExitOK: every task is Done (or the command did what it was asked).
	ExitOK = 0
	// ExitUsage: bad input or usage, a database that cannot be opened; nothing was sent.
	ExitUsage = 1
	// ExitFailed: some task Failed (replay: some history does not give its stored state).
	ExitFailed = 2
	// ExitNeedsAccountFix: some task waits in NeedsAccountFix (takes precedence over ExitFailed).
	ExitNeedsAccountFix = 3
	// ExitStoreFailed: the database failed to record paid answers for longer
	// than the engine's bound (or at the stop); the message names them, and
	// resume records each as possibly charged.
	ExitStoreFailed = 4
	// ExitInterrupted: SIGINT or SIGTERM; unfinished tasks stay in the database.
	ExitInterrupted = 130
)

// Environment variables read by every command.
const (
	EnvDB     = "CAPTCHAFSM_DB"
	EnvAPIURL = "CAPTCHAFSM_API_URL"
	EnvAPIKey = "CAPTCHAFSM_API_KEY"
)

// Defaults of the configuration.
const (
	DefaultDB     = "captchafsm.db"
	DefaultAPIURL = provider.DefaultBaseURL
)

// Options are what the command tree takes from its process. The zero value
// (or nil) means the real process: os.Getenv, x/term on *os.File, and
// os.Executable for demo --crash.
type Options struct {
	// Getenv looks up an environment variable; nil means os.Getenv.
	Getenv func(string) string
	// Terminal reports whether w is an interactive terminal (progress bars
	// are drawn only there); nil means term.IsTerminal on an *os.File.
	Terminal func(w io.Writer) bool
	// Executable is the program demo --crash starts as its child engine;
	// "" means os.Executable().
	Executable string
	// LockTimeout is how long commands wait for a database held by another
	// process before saying so; 0 means 500ms.
	LockTimeout time.Duration
}

func (o Options) getenv(k string) string {
	if o.Getenv == nil {
		return os.Getenv(k)
	}
	return o.Getenv(k)
}

func (o Options) terminal(w io.Writer) bool {
	if o.Terminal != nil {
		return o.Terminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (o Options) lockTimeout() time.Duration {
	if o.LockTimeout <= 0 {
		return 500 * time.Millisecond
	}
	return o.LockTimeout
}

// app holds the persistent flags and the options shared by every command.
type app struct {
	opts    Options
	root    *cobra.Command
	db      string
	apiURL  string
	keyFile string
	policy  string
	json    bool
}

// exitError carries an exit status. A nil err means the command already
// said what went wrong.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr is a bad input: exit 1 with one line naming what is wrong.
func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// exitWith ends the command with code; the message was already printed.
func exitWith(code int) error {
	if code == ExitOK {
		return nil
	}
	return &exitError{code: code}
}

// errInterrupted ends solve, run, resume and demo after SIGINT/SIGTERM.
var errInterrupted = &exitError{code: ExitInterrupted,
	err: errors.New("interrupted: unfinished tasks stay in the database; `captchafsm resume` continues them")}

// NewRoot returns the full command tree. Building it has no side effects
// (nothing is read, opened or started until a command runs), so a doc
// generator may walk every command's help. opts may be nil.
func NewRoot(opts *Options) *cobra.Command {
	a := &app{}
	if opts != nil {
		a.opts = *opts
	}
	root := &cobra.Command{
		Use:   "captchafsm",
		Short: "Solve CAPTCHAs through CaptchaAI with a persisted state machine",
		Long: `captchafsm solves CAPTCHAs through the CaptchaAI in.php/res.php API (and any
2captcha-compatible provider). Every task is a state machine whose every
transition is committed to a bbolt file before the engine acts on it: a crash
loses nothing, a resume never pays twice without saying so, and every error
code of the provider has one documented handling (see "captchafsm errors").

Configuration, for every command: flags, then the environment, then defaults.
The API key comes from $CAPTCHAFSM_API_KEY or --key-file, never from a flag
(a flag would show in ps). Start with "captchafsm demo": no key, no network.

` + policyHelp(),
		Example: `  captchafsm demo
  CAPTCHAFSM_API_KEY=... captchafsm solve --method userrecaptcha \
      --param googlekey=6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ- --param pageurl=https://example.com/login
  captchafsm run --from tasks.jsonl --json > results.jsonl
  captchafsm list --state Failed`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	a.root = root
	pf := root.PersistentFlags()
	pf.StringVar(&a.db, "db", "", "database: a bbolt file, or a postgres:// URL for a store several engines share (env "+EnvDB+", default "+DefaultDB+")")
	pf.StringVar(&a.apiURL, "api-url", "", "API base URL; in.php and res.php live under it (env "+EnvAPIURL+", default "+DefaultAPIURL+")")
	pf.StringVar(&a.keyFile, "key-file", "", "file holding the API key (else env "+EnvAPIKey+")")
	pf.StringVar(&a.policy, "policy", "", "JSON policy file overriding timing and limits")
	pf.BoolVar(&a.json, "json", false, "machine-readable output")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%s: %v (see %s --help)", c.CommandPath(), err, c.CommandPath())
	})

	root.AddCommand(
		a.demoCmd(), a.demoEngineCmd(),
		a.solveCmd(), a.runCmd(), a.resumeCmd(), a.accountFixedCmd(),
		a.listCmd(), a.historyCmd(), a.replayCmd(),
		a.errorsCmd(), a.diagramCmd(), a.simulateCmd(),
		a.balanceCmd(), a.reportCmd(), a.pruneCmd(), a.serveCmd(), a.gatewayCmd(),
	)
	return root
}

// Main runs the command line args with the given streams and returns the
// exit status. SIGINT and SIGTERM cancel the command's context; a second
// signal kills the process.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal gets the default action
	}()
	root := NewRoot(nil)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return Execute(ctx, root, args)
}

// Execute runs root with args and returns the exit status, printing an
// error as one line on root's error stream.
func Execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		fmt.Fprintln(root.ErrOrStderr(), "captchafsm: "+printable(oneLine(err.Error())))
	}
	return code
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// setting is one resolved configuration value and where it came from, so
// an error can name the flag or variable to fix.
type setting struct {
	value  string
	source string // "--db", "CAPTCHAFSM_DB" or "default"
}

func (a *app) resolve(flag, value, env, def string) setting {
	if f := a.root.PersistentFlags().Lookup(flag); f != nil && f.Changed {
		return setting{value, "--" + flag}
	}
	if v := a.opts.getenv(env); v != "" {
		return setting{v, env}
	}
	return setting{def, "default " + flag}
}

func (a *app) dbPath() setting { return a.resolve("db", a.db, EnvDB, DefaultDB) }

func (a *app) apiBase() setting { return a.resolve("api-url", a.apiURL, EnvAPIURL, DefaultAPIURL) }

// args returns a cobra.PositionalArgs that names what it wanted.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("%s: want %s (got %d arguments)", c.CommandPath(), what, len(args))
		}
		return nil
	}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%s: unexpected argument %q", c.CommandPath(), args[0])
	}
	return nil
}
