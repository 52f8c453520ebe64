package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/dashboard"
	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/states"
)

// EnvToken holds serve's bearer token when --token-file is not given.
const EnvToken = "CAPTCHAFSM_TOKEN"

// minTokenLen keeps guessable tokens out: serve's token opens an API that
// submits tasks (paid) and shows their parameters.
const minTokenLen = 16

// serveShutdown bounds the wait for requests in flight when serve stops.
const serveShutdown = 10 * time.Second

func (a *app) serveCmd() *cobra.Command {
	var addr, tokenFile, level string
	c := &cobra.Command{
		Use:   "serve [--addr 127.0.0.1:8080] [--token-file FILE]",
		Short: "Run the engine with a web dashboard, a JSON API and /metrics",
		Long: `Run the engine until interrupted: it resumes every unfinished task of the
database and takes new ones through a small JSON API, and serves on --addr

  /                        the dashboard: tasks per state, the breaker and its
                           account-fixed button, a filterable task list
  /tasks/ID                a task's timeline and the state diagram
  POST /api/tasks          submit {"method", "params", "ref"} (as a line of run --from)
  GET  /api/tasks?state=S  list; /api/tasks/ID (?wait=30s), /api/tasks/ID/history
  GET  /api/summary        tasks per state and the breaker
  POST /api/account-fixed  release NeedsAccountFix tasks
  /metrics                 Prometheus metrics (docs/metrics.md)

Since the database admits one process at a time, this API is also how to
inspect a database that serve holds.

serve listens on loopback by default. Any other address needs a token (from
--token-file, else $CAPTCHAFSM_TOKEN, at least 16 characters): every request
must then carry "Authorization: Bearer <token>", or the cookie a browser gets
by opening the dashboard once with ?token=<token>. The first line on stdout
is the dashboard's URL; logs are structured (JSON with --json) on stderr.
SIGINT or SIGTERM stops serve cleanly (exit 0): the tasks stay in the
database for the next serve or resume.`,
		Example: `  captchafsm serve
  captchafsm serve --addr 127.0.0.1:0 --json > url.txt
  openssl rand -hex 32 > token && captchafsm serve --addr 0.0.0.0:8080 --token-file token
  curl -s -H "Authorization: Bearer $(cat token)" -H 'Content-Type: application/json' \
      -d '{"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":"https://example.com"}}' \
      http://127.0.0.1:8080/api/tasks`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd, addr, tokenFile, level)
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (port 0: any free port); beyond loopback it needs a token")
	f.StringVar(&tokenFile, "token-file", "", "file holding the bearer token every request must carry (else env "+EnvToken+")")
	f.StringVar(&level, "log-level", "info", "least level logged: debug, info, warn or error")
	return c
}

// serveToken returns the token from --token-file, else $CAPTCHAFSM_TOKEN,
// else "". No error repeats it.
func (a *app) serveToken(tokenFile string) (string, error) {
	source, tok := EnvToken, a.opts.getenv(EnvToken)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", usageErr("--token-file %s: %s", tokenFile, fsProblem(err))
		}
		source, tok = "--token-file "+tokenFile, string(b)
	}
	tok = strings.TrimSpace(tok)
	if tokenFile == "" && tok == "" {
		return "", nil
	}
	if len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", usageErr("%s: the token must be at least %d characters on one line (try: openssl rand -hex 32)", source, minTokenLen)
	}
	return tok, nil
}

// loopback reports whether a listen address stays on this machine. An
// empty host listens on every interface; a name other than localhost may
// resolve anywhere.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageErr("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func (a *app) serve(cmd *cobra.Command, addr, tokenFile, levelName string) error {
	// Everything that can be wrong with the command line is checked before
	// anything is opened, bound or sent.
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErr("--addr %q: want host:port, such as 127.0.0.1:8080", addr)
	}
	token, err := a.serveToken(tokenFile)
	if err != nil {
		return err
	}
	if token == "" && !loopback(host) {
		return usageErr("--addr %s listens beyond loopback: pass --token-file FILE (or set %s) so that every request needs the token", addr, EnvToken)
	}
	level, err := parseLevel(levelName)
	if err != nil {
		return err
	}
	client, pol, err := a.client()
	if err != nil {
		return err
	}

	stderr := cmd.ErrOrStderr()
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if a.json {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(handler)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usageErr("--addr %s: %s", addr, listenProblem(err))
	}
	defer ln.Close()
	// serve takes new tasks, so it may start on a new database; it says so,
	// in case the path was meant to name an existing one.
	_, statErr := os.Stat(a.dbPath().value)
	fresh := errors.Is(statErr, os.ErrNotExist) && !pgstore.IsURL(a.dbPath().value)
	store, err := a.openStore(true)
	if err != nil {
		return err
	}
	defer store.Close()
	if fresh {
		log.Warn("created a new empty database (was the path meant to name an existing one?)", "db", a.dbPath().value)
	}
	ctx := cmd.Context()
	counts, err := store.Count(ctx)
	if err != nil {
		return usageErr("%s: %v", a.dbPath().value, err)
	}

	m := metrics.New(metrics.Options{Store: store})
	m.Registry().MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, err := engine.Open(ctx, engine.Config{Store: store, API: m.InstrumentAPI(client), Policy: pol, Fleet: a.sharedDB(),
		Logger: log, OnTransition: m.Observe, FetchCost: true})
	if err != nil {
		return usageErr("%v", err)
	}
	m.SetBreaker(eng.BreakerOpen)

	// Requests get a context that ends when serve stops, so that a long
	// ?wait= does not hold the shutdown.
	reqCtx, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	srv := &http.Server{
		Handler:           dashboard.New(dashboard.Config{Engine: eng, Store: store, Metrics: m, Token: token, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String() + "/"
	if a.json {
		_ = json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"url": url, "metrics": url + "metrics"})
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), url)
	}
	active := 0
	for _, s := range states.ActiveStates() {
		active += counts[s]
	}
	auth := "no token: loopback clients only"
	if token != "" {
		auth = "every request needs the token; a browser logs in once with " + url + "?token=<token>"
	}
	log.Info("serving", "url", url, "auth", auth, "db", a.dbPath().value,
		"resumed", active, "needs_account_fix", counts[states.NeedsAccountFix])

	return serveUntil(ctx, served, stopRequests, srv, eng.Shutdown, eng, log, "serve "+addr, "resume records them")
}

// serveUntil waits for ctx's end (a signal) or the server's, then stops
// the HTTP server (cancelling the requests in flight: stopRequests) and
// the engine (shutdown), gracefully within serveShutdown, and logs what
// the engine did. what names the command in the error; aborted says who
// records the requests the shutdown cut off.
func serveUntil(ctx context.Context, served <-chan error, stopRequests func(), srv *http.Server,
	shutdown func(context.Context) error, eng *engine.Engine, log *slog.Logger, what, aborted string) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	stopRequests()
	sctx, cancel := context.WithTimeout(context.Background(), serveShutdown)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := shutdown(sctx); err != nil {
		log.Warn("requests in flight aborted at shutdown; "+aborted, "err", err)
	}
	st := eng.Stats()
	log.Info("stopped: unfinished tasks stay in the database", "transitions", st.Transitions,
		"submits", st.SubmitRequests, "polls", st.PollRequests)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", what, serveErr)
	}
	return nil
}

// listenProblem says why an address cannot be listened on, without Go's
// "listen tcp X:" prefix.
func listenProblem(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
