package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/states"
)

// Defaults of Config's durations.
const (
	// DefaultDedupWindow is how long an in.php answer that never reached its
	// client can be claimed by the client's identical retry. Clients retry
	// within seconds; a reCAPTCHA token lives about two minutes, so a
	// claimed task's answer is still fresh.
	DefaultDedupWindow = 30 * time.Second
	// DefaultBalanceTTL is how long an upstream balance is reused: every
	// getbalance counts against the provider's res.php budget.
	DefaultBalanceTTL = 5 * time.Second
	// DefaultRetain is how long a settled task stays in memory after it
	// settled; older ones are read from the store when polled.
	DefaultRetain = 10 * time.Minute
)

// Client is one local client of the gateway: its name, shown in refs, logs,
// metrics and the dashboard, and its key, which never leaves the gateway.
type Client struct {
	// Name is 1 to 64 letters, digits, '.', '_' or '-', starting with a
	// letter or a digit. It is part of each task's ref: renaming a client
	// orphans its earlier ids.
	Name string
	// Key is 32 hexadecimal characters, so that clients' own key checks
	// pass; compared in constant time, in any letter case.
	Key string
}

// Config configures a Gateway. Engine.Store, Engine.API and Clients are
// required; every other zero value means its default.
type Config struct {
	// Engine is the engine's configuration; Open opens the engine with it.
	// Its OnTransition, if set, is called after the gateway's own hook.
	Engine engine.Config
	// Clients are the local clients: their names and keys.
	Clients []Client
	// DedupWindow: an identical in.php request (same client, same task
	// fingerprint) within this window of one whose answer never reached its
	// client gets that answer's id instead of a new task. 0 means
	// DefaultDedupWindow; negative turns it off.
	DedupWindow time.Duration
	// BalanceTTL is how long an upstream balance is reused; 0 means
	// DefaultBalanceTTL.
	BalanceTTL time.Duration
	// Retain is how long a settled task stays in memory; 0 means
	// DefaultRetain.
	Retain time.Duration
	// PingbackHosts are host names or addresses, beyond loopback ones, that
	// pingback URLs may name.
	PingbackHosts []string
	// PingbackClient sends pingbacks; nil means a client of the gateway's
	// own (10 s timeout, no redirects).
	PingbackClient *http.Client
	// Observer receives per-client events (metrics.Gateway implements it);
	// nil discards them.
	Observer Observer
	// Logger receives structured logs; nil discards them. Keys are never
	// logged.
	Logger *slog.Logger
}

// Observer receives the gateway's per-client events, for metrics. Its
// methods are called concurrently and must return quickly.
type Observer interface {
	// Answered counts one answer: request is "in.php" or res.php's action
	// ("get", "get2", "getbalance", ...; "other" for unknown ones), code
	// "OK" or the code answered. client is "-" for an unknown key.
	Answered(client, request, code string)
	// Settled counts a client's task reaching Done, Failed or
	// NeedsAccountFix, d after it was accepted.
	Settled(client string, state states.State, d time.Duration)
	// Deduplicated counts an in.php retry answered with an earlier id.
	Deduplicated(client string)
	// Reported counts a reportgood (good) or reportbad and the upstream's
	// code ("OK" when recorded).
	Reported(client string, good bool, code string)
	// Pingback counts a pingback delivered (ok) or failed.
	Pingback(client string, ok bool)
}

// Sentinel errors.
var (
	// ErrConfig is wrapped by every error of a Config that Open refuses.
	ErrConfig = errors.New("gateway: config")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Check checks one client: its name, and its key's format. The error
// names the client, never the key.
func (c Client) Check() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("name %.70q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if provider.ValidateKey(c.Key) != nil {
		return fmt.Errorf("client %s: the key must be 32 hex characters", c.Name)
	}
	return nil
}

// CheckClients checks clients as Open does: at least one, each valid
// (Client.Check), names and keys unique. Errors name the client, never a
// key.
func CheckClients(clients []Client) error {
	if len(clients) == 0 {
		return fmt.Errorf("%w: Clients: at least one client is required", ErrConfig)
	}
	names := map[string]bool{}
	keys := map[string]bool{}
	for i, c := range clients {
		if err := c.Check(); err != nil {
			return fmt.Errorf("%w: Clients[%d]: %w", ErrConfig, i, err)
		}
		if names[c.Name] {
			return fmt.Errorf("%w: Clients[%d]: name %s is given twice", ErrConfig, i, c.Name)
		}
		names[c.Name] = true
		k := strings.ToLower(c.Key)
		if keys[k] {
			return fmt.Errorf("%w: Clients[%d] (%s): the key is given twice", ErrConfig, i, c.Name)
		}
		keys[k] = true
	}
	return nil
}

// clientKey is a client as Authenticate compares it.
type clientKey struct {
	name string
	key  []byte // lower-case
}

// Gateway serves the provider's in.php/res.php protocol in front of an
// engine: its ServeHTTP is the protocol's handler. Open one per engine; it
// is safe for concurrent use.
type Gateway struct {
	eng      *engine.Engine
	log      *slog.Logger
	obs      Observer
	handler  *protocol.Handler
	clients  []clientKey
	ids      idSeq
	view     *view
	dedup    *dedup
	balance  balanceCache
	pings    *pingbacks
	account  accountCode
	opTimout time.Duration
}

// Open opens the engine of cfg.Engine (which resumes the store's
// unfinished tasks) and returns a Gateway over it.
func Open(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := CheckClients(cfg.Clients); err != nil {
		return nil, err
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.BalanceTTL <= 0 {
		cfg.BalanceTTL = DefaultBalanceTTL
	}
	if cfg.Retain <= 0 {
		cfg.Retain = DefaultRetain
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	obs := cfg.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	pings, err := newPingbacks(cfg.PingbackHosts, cfg.PingbackClient, obs, log)
	if err != nil {
		return nil, err
	}
	g := &Gateway{log: log, obs: obs, view: newView(cfg.Retain),
		dedup: newDedup(cfg.DedupWindow), pings: pings, opTimout: 30 * time.Second}
	g.balance.ttl = cfg.BalanceTTL
	for _, c := range cfg.Clients {
		g.clients = append(g.clients, clientKey{name: c.Name, key: []byte(strings.ToLower(c.Key))})
	}
	g.handler = protocol.NewHandler(backend{g}, nil)

	ecfg := cfg.Engine
	user := ecfg.OnTransition
	ecfg.OnTransition = func(tr engine.Transition) {
		g.observe(tr)
		if user != nil {
			user(tr)
		}
	}
	eng, err := engine.Open(ctx, ecfg)
	if err != nil {
		pings.close()
		return nil, err
	}
	g.eng = eng
	if err := g.load(ctx); err != nil {
		_ = eng.Close()
		pings.close()
		return nil, err
	}
	return g, nil
}

// load takes in the store's unfinished gateway tasks: their ids keep the
// id sequence above them, and they answer polls from memory at once.
func (g *Gateway) load(ctx context.Context) error {
	list, err := g.eng.List(ctx, persist.ListOptions{States: append(states.ActiveStates(), states.NeedsAccountFix)})
	if err != nil {
		return fmt.Errorf("gateway: load unfinished tasks: %w", err)
	}
	n := 0
	for _, t := range list {
		client, id, ok := ParseRef(t.Ref)
		if !ok {
			continue
		}
		n++
		g.ids.above(id)
		g.view.put(client, id, t, time.Now())
		if t.State == states.NeedsAccountFix {
			g.account.saw(t.Code)
		}
	}
	if n > 0 {
		g.log.Info("gateway tasks resumed", "count", n)
	}
	return nil
}

// Engine returns the gateway's engine (for the dashboard and metrics).
func (g *Gateway) Engine() *engine.Engine { return g.eng }

// Shutdown stops the engine gracefully (unfinished tasks stay in the store
// for the next Open) and the pingbacks being sent. Stop the HTTP server
// first: requests arriving after Shutdown get ERROR_INTERNAL_SERVER_ERROR.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.eng.Shutdown(ctx)
	g.pings.close()
	return err
}

// Close is Shutdown without a deadline.
func (g *Gateway) Close() error { return g.Shutdown(context.Background()) }

// authenticate returns the name of the client whose key is key, comparing
// every key in constant time.
func (g *Gateway) authenticate(key string) (string, bool) {
	k := []byte(strings.ToLower(key))
	name := ""
	found := 0
	for _, c := range g.clients {
		if subtle.ConstantTimeCompare(k, c.key) == 1 {
			name = c.name
			found = 1
		}
	}
	return name, found == 1
}

type nopObserver struct{}

func (nopObserver) Answered(string, string, string)             {}
func (nopObserver) Settled(string, states.State, time.Duration) {}
func (nopObserver) Deduplicated(string)                         {}
func (nopObserver) Reported(string, bool, string)               {}
func (nopObserver) Pingback(string, bool)                       {}
