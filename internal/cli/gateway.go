package cli

import (
	"context"
	"crypto/subtle"
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
	"github.com/captchafsm/captchafsm/internal/gateway"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/provider/protocol"
)

// gatewayOptions are the gateway command's flags.
type gatewayOptions struct {
	addr, keysFile, tokenFile, level string
	allowRemote                      bool
	dedupWindow, balanceTTL          time.Duration
	pingbackHosts                    []string
}

func (a *app) gatewayCmd() *cobra.Command {
	var o gatewayOptions
	c := &cobra.Command{
		Use:   "gateway --addr 127.0.0.1:PORT --keys FILE",
		Short: "Serve the provider's protocol in front of the engine, for bots in any language",
		Long: `Serve the CaptchaAI / 2captcha API (in.php and res.php) in front of the engine
until interrupted, so that bots in any language keep their client and change
only its base URL: every task is durable before its id is answered, polls are
answered from the engine's state (however often clients poll, the provider sees
only the engine's batched polls), NO_SLOT and UNSOLVABLE are retried and
resubmitted out of the client's sight, and a gateway restarted after a crash
answers every id it gave and finishes those tasks.

--keys FILE holds one local client a line, "NAME KEY" (KEY: 32 hex characters
of your own, e.g. openssl rand -hex 16; # starts a comment). Clients use their
local key; the provider's key comes as for every command (CAPTCHAFSM_API_KEY or
--key-file) and never reaches a client, a log or the database. A local key
must differ from the provider's. The NAME is in each task's ref
("gw:NAME:ID"), on the dashboard and in the per-client metrics.

The first line on stdout is the base URL (clients call BASE/in.php and
BASE/res.php); the same address serves the dashboard at / and Prometheus
metrics at /metrics. The gateway speaks plain HTTP and listens on loopback
only unless --allow-remote: keys travel in the clear, so put a TLS-terminating
proxy in front (e.g. caddy reverse-proxy --from captcha.example.com --to
127.0.0.1:8090) and keep the gateway on loopback. Beyond loopback the
dashboard needs --token-file (as serve's does).

Answers: CAPCHA_NOT_READY while a task is in flight, the token when Done, the
final code when Failed (POLL_TIMEOUT and the engine's other codes become
ERROR_CAPTCHA_UNSOLVABLE), the account code while NeedsAccountFix
(account-fixed, or the dashboard's button, releases them). getbalance asks
the provider at most once per --balance-cache; reportgood/reportbad go to the
provider id of the task's last submit; get2 asks the price once. A client that
lost an in.php answer (timed out) and retries the identical request within
--dedup-window gets the same id, not a second paid task. Pingback URLs must be
on loopback or a host of --pingback-allow. See docs/gateway.md.

SIGINT or SIGTERM stops the gateway cleanly (exit 0): unfinished tasks stay in
the database and the next gateway finishes them.`,
		Example: `  printf 'scraper %s\n' "$(openssl rand -hex 16)" > keys.txt
  CAPTCHAFSM_API_KEY=... captchafsm gateway --addr 127.0.0.1:8090 --keys keys.txt
  # then, in the bot: the client's base URL http://127.0.0.1:8090, its key from keys.txt
  curl "http://127.0.0.1:8090/in.php?key=LOCALKEY&method=turnstile&sitekey=0x4AAAAAAAC3DHQFLr1GavRN&pageurl=https://example.com&json=1"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.gateway(cmd, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:8090", "address to listen on (port 0: any free port); loopback unless --allow-remote")
	f.StringVar(&o.keysFile, "keys", "", `file of the local clients, one "NAME KEY" a line (required)`)
	f.BoolVar(&o.allowRemote, "allow-remote", false, "listen beyond loopback (plain HTTP: put a TLS proxy in front)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the dashboard's bearer token (else env "+EnvToken+"); required for the dashboard beyond loopback")
	f.DurationVar(&o.dedupWindow, "dedup-window", gateway.DefaultDedupWindow, "how long a lost in.php answer's id is kept for the client's identical retry (0: never)")
	f.DurationVar(&o.balanceTTL, "balance-cache", gateway.DefaultBalanceTTL, "how long the provider's balance is reused for getbalance")
	f.StringSliceVar(&o.pingbackHosts, "pingback-allow", nil, "hosts, beyond loopback, that pingback URLs may name (comma-separated)")
	f.StringVar(&o.level, "log-level", "info", "least level logged: debug, info, warn or error")
	return c
}

// gatewayClients reads --keys: every line must name its client.
func gatewayClients(file string) ([]gateway.Client, error) {
	if file == "" {
		return nil, usageErr(`--keys FILE is required: one local client a line, "NAME KEY" (try: printf 'mybot %%s\n' "$(openssl rand -hex 16)" > keys.txt)`)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("--keys %s: %s", file, fsProblem(err))
	}
	lines, err := parseKeyLines(b)
	if err != nil {
		return nil, usageErr("--keys %s: %v", file, err)
	}
	clients := make([]gateway.Client, len(lines))
	names := map[string]int{}
	for i, l := range lines {
		if l.name == "" {
			return nil, usageErr("--keys %s: line %d: want NAME KEY: the gateway names each client", file, l.line)
		}
		clients[i] = gateway.Client{Name: l.name, Key: l.key}
		if err := clients[i].Check(); err != nil {
			return nil, usageErr("--keys %s: line %d: %v", file, l.line, err)
		}
		if first, dup := names[l.name]; dup {
			return nil, usageErr("--keys %s: line %d: the name %s is given twice (first on line %d)", file, l.line, l.name, first)
		}
		names[l.name] = l.line
	}
	return clients, nil
}

func (a *app) gateway(cmd *cobra.Command, o gatewayOptions) error {
	// Everything that can be wrong with the command line is checked before
	// anything is opened, bound or sent.
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return usageErr("--addr %q: want host:port, such as 127.0.0.1:8090", o.addr)
	}
	if !loopback(host) && !o.allowRemote {
		return usageErr("--addr %s listens beyond loopback, and the gateway speaks plain HTTP (keys in the clear): "+
			"listen on loopback and put a TLS-terminating proxy in front (caddy reverse-proxy --from captcha.example.com --to 127.0.0.1:8090), "+
			"or pass --allow-remote on a network you trust", o.addr)
	}
	clients, err := gatewayClients(o.keysFile)
	if err != nil {
		return err
	}
	if o.dedupWindow < 0 {
		return usageErr("--dedup-window %s: must not be negative (0 turns it off)", o.dedupWindow)
	}
	if o.balanceTTL <= 0 {
		return usageErr("--balance-cache %s: must be positive", o.balanceTTL)
	}
	for _, h := range o.pingbackHosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/@ ") || strings.Contains(h, ":") && net.ParseIP(h) == nil {
			return usageErr("--pingback-allow %q: want host names or addresses without a port, comma-separated", h)
		}
	}
	token, err := a.serveToken(o.tokenFile)
	if err != nil {
		return err
	}
	level, err := parseLevel(o.level)
	if err != nil {
		return err
	}
	client, pol, err := a.client()
	if err != nil {
		return err
	}
	fp, err := a.failpoint() // test-only: see failpoint.go
	if err != nil {
		return err
	}
	upKey, _ := a.apiKey() // checked by client()
	for _, c := range clients {
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Key)), []byte(strings.ToLower(upKey))) == 1 {
			return usageErr("--keys %s: client %s has the provider's own key: give each client a local key of its own (openssl rand -hex 16), so that the provider's key never reaches a client", o.keysFile, c.Name)
		}
	}

	stderr := cmd.ErrOrStderr()
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if a.json {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(handler)

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return usageErr("--addr %s: %s", o.addr, listenProblem(err))
	}
	defer ln.Close()
	store, err := a.openStore(true)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx := cmd.Context()

	m := metrics.New(metrics.Options{Store: store})
	gm := metrics.NewGateway(nil)
	m.Registry().MustRegister(gm, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dedupWindow := o.dedupWindow
	if dedupWindow == 0 {
		dedupWindow = -1 // the flag's 0 is "never"; the Config's is the default
	}
	gw, err := gateway.Open(ctx, gateway.Config{
		Engine: engine.Config{Store: fp.store(store), API: m.InstrumentAPI(fp.api(client)), Policy: pol, Fleet: a.sharedDB(),
			Logger: log, OnTransition: m.Observe, FetchCost: true},
		Clients:       clients,
		DedupWindow:   dedupWindow,
		BalanceTTL:    o.balanceTTL,
		PingbackHosts: o.pingbackHosts,
		Observer:      gm,
		Logger:        log,
	})
	if err != nil {
		if errors.Is(err, gateway.ErrConfig) {
			return usageErr("%v", err)
		}
		return usageErr("%s: %v", a.dbPath().value, err)
	}
	eng := gw.Engine()
	m.SetBreaker(eng.BreakerOpen)

	dash := dashboard.New(dashboard.Config{Engine: eng, Store: store, Metrics: m, Token: token, Logger: log})
	// Requests get a context that ends when the gateway stops.
	reqCtx, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	srv := &http.Server{
		Handler:           gatewayMux(gw, dash),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	if !loopback(host) {
		// Allowed by --allow-remote, and still worth saying each time:
		// every client's key crosses the network in the clear.
		port := ln.Addr().(*net.TCPAddr).Port
		log.Warn("listening beyond loopback over plain HTTP: clients' keys travel in the clear; "+
			"keep the gateway on loopback behind a TLS-terminating proxy",
			"addr", ln.Addr().String(), "for_example", fmt.Sprintf("caddy reverse-proxy --from captcha.example.com --to 127.0.0.1:%d", port))
	}
	if a.json {
		_ = json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{
			"url": base, "in": base + "/in.php", "res": base + "/res.php", "dashboard": base + "/", "metrics": base + "/metrics"})
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), base)
	}
	names := make([]string, len(clients))
	for i, c := range clients {
		names[i] = c.Name
	}
	log.Info("gateway serving", "url", base, "in", base+"/in.php", "dashboard", base+"/",
		"clients", strings.Join(names, ","), "db", a.dbPath().value, "upstream", a.apiBase().value)

	return serveUntil(ctx, served, stopRequests, srv, gw.Shutdown, eng, log, "gateway "+o.addr, "the next start records them")
}

// gatewayMux sends in.php and res.php (under any prefix) to the gateway,
// everything else to the dashboard.
func gatewayMux(gw, dash http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasSuffix(p, "/"+protocol.EndpointIn) || strings.HasSuffix(p, "/"+protocol.EndpointRes) {
			gw.ServeHTTP(w, r)
			return
		}
		dash.ServeHTTP(w, r)
	})
}
