package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/gateway"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// The keys of the tests: the provider's (upstream) and two local clients'.
const (
	upKey    = "0123456789abcdef0123456789abcdef"
	aliceKey = "a11ce000a11ce000a11ce000a11ce000"
	bobKey   = "b0b00000b0b00000b0b00000b0b00000"
)

// fastPolicy keeps the simulator's documented poll timing at speed 1 (the
// engine polls a task up to a second early to join a batch) and solves in
// seconds of virtual time.
var fastPolicy = engine.Policy{FirstPollDelay: 6 * time.Second, FirstPollDelayToken: 11 * time.Second,
	PollInterval: 6 * time.Second, BackoffBase: time.Second, BackoffMax: 5 * time.Second}

// world is one gateway over an in-process simulator and a bbolt file,
// driven by in-process clients: everything runs inside a synctest bubble.
type world struct {
	t     testing.TB
	sim   *providersim.Sim
	store persist.Store
	up    *provider.Client
	gw    *gateway.Gateway
	logs  *syncBuffer
	obs   *recorder
	dir   string
	cfg   gateway.Config
}

type opts struct {
	sim      providersim.Config
	policy   engine.Policy
	store    func(persist.Store) persist.Store // wraps the store
	dedup    time.Duration
	pingback *http.Client
	hosts    []string
}

func newWorld(t testing.TB, o opts) *world {
	t.Helper()
	if o.sim.Mix.Submit == nil && o.sim.Mix.Poll == nil {
		o.sim.Mix = providersim.NoErrors()
	}
	o.sim.Key = upKey
	w := &world{t: t, sim: providersim.New(o.sim), dir: t.TempDir(), logs: &syncBuffer{}, obs: newRecorder()}
	t.Cleanup(w.sim.Close)
	up, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL, Key: upKey, HTTPClient: w.sim.Client()})
	require.NoError(t, err)
	w.up = up
	pol := o.policy
	if pol.PollInterval == 0 {
		pol = fastPolicy
	}
	w.cfg = gateway.Config{
		Engine:         engine.Config{API: up, Policy: pol},
		Clients:        []gateway.Client{{Name: "alice", Key: aliceKey}, {Name: "bob", Key: bobKey}},
		DedupWindow:    o.dedup,
		PingbackClient: o.pingback,
		PingbackHosts:  o.hosts,
		Observer:       w.obs,
		Logger:         slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	w.open(o.store)
	return w
}

// open opens the store and the gateway; wrap, if set, wraps the store.
func (w *world) open(wrap func(persist.Store) persist.Store) {
	w.t.Helper()
	st, err := openBolt(w.dir)
	require.NoError(w.t, err)
	w.store = st
	w.t.Cleanup(func() { _ = st.Close() })
	if wrap != nil {
		w.store = wrap(st)
	}
	w.cfg.Engine.Store = w.store
	gw, err := gateway.Open(context.Background(), w.cfg)
	require.NoError(w.t, err)
	w.gw = gw
	w.t.Cleanup(w.close)
}

// close stops the gateway and the store (again: a no-op).
func (w *world) close() {
	if w.gw != nil {
		require.NoError(w.t, w.gw.Close())
		w.gw = nil
	}
	if w.store != nil {
		_ = w.store.Close()
		w.store = nil
	}
}

// call sends one request to the gateway's handler, as a client on the
// wire would, and returns the answer's body.
func (w *world) call(ctx context.Context, endpoint string, q url.Values) (string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://gateway.test/"+endpoint, strings.NewReader(q.Encode()))
	require.NoError(w.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	served := make(chan struct{})
	gw := w.gw
	go func() {
		defer close(served)
		gw.ServeHTTP(rec, req) // the server goes on when the client gives up
	}()
	select {
	case <-served:
	case <-ctx.Done():
		return "", nil, ctx.Err() // the client gave up before the answer
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	return rec.Body.String(), rec.Header(), nil
}

// in sends in.php for key with the pairs kv and returns the answer.
func (w *world) in(key string, kv ...string) string {
	w.t.Helper()
	body, _, err := w.call(context.Background(), "in.php", form(key, kv...))
	require.NoError(w.t, err)
	return body
}

// res sends res.php for key with the pairs kv and returns the answer.
func (w *world) res(key string, kv ...string) string {
	w.t.Helper()
	body, _, err := w.call(context.Background(), "res.php", form(key, kv...))
	require.NoError(w.t, err)
	return body
}

func form(key string, kv ...string) url.Values {
	q := url.Values{"key": {key}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// mustID returns the id of an "OK|ID" answer.
func mustID(t testing.TB, answer string) int64 {
	t.Helper()
	s, ok := strings.CutPrefix(answer, "OK|")
	require.True(t, ok, "want OK|ID, got %q", answer)
	id, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return id
}

// turnstile is a valid turnstile task; page makes its content unique.
func turnstile(page string) []string {
	return []string{"method", "turnstile", "sitekey", "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl", "https://example.com/" + page}
}

// poll polls id every second, as the official clients do, until the
// answer is not CAPCHA_NOT_READY, and returns it.
func (w *world) poll(key string, id int64) string {
	w.t.Helper()
	for range 600 {
		<-time.After(time.Second)
		a := w.res(key, "action", "get", "id", strconv.FormatInt(id, 10))
		if a != "CAPCHA_NOT_READY" {
			return a
		}
	}
	w.t.Fatalf("task %d not answered in 10 minutes", id)
	return ""
}

// task returns the stored task of client's id.
func (w *world) task(client string, id int64) *persist.Task {
	w.t.Helper()
	tk, err := w.store.GetByRef(context.Background(), gateway.Ref(client, id))
	require.NoError(w.t, err)
	return tk
}

// jsonAnswer decodes a json=1 answer.
type jsonAnswer struct {
	Status    int             `json:"status"`
	Request   json.RawMessage `json:"request"`
	ErrorText string          `json:"error_text"`
	Price     string          `json:"price"`
}

func decode(t testing.TB, body string) jsonAnswer {
	t.Helper()
	var a jsonAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &a), body)
	return a
}

// syncBuffer is a buffer the logger writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorder is an Observer that counts.
type recorder struct {
	mu        sync.Mutex
	answers   map[string]int // client/request/code
	settled   map[string]int // client/state
	dedup     map[string]int
	reports   map[string]int // client/good|bad/code
	pingbacks map[string]int // client/ok
}

func newRecorder() *recorder {
	return &recorder{answers: map[string]int{}, settled: map[string]int{}, dedup: map[string]int{},
		reports: map[string]int{}, pingbacks: map[string]int{}}
}

func (r *recorder) Answered(client, request, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[client+"/"+request+"/"+code]++
}

func (r *recorder) Settled(client string, s states.State, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settled[client+"/"+string(s)]++
}

func (r *recorder) Deduplicated(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dedup[client]++
}

func (r *recorder) Reported(client string, good bool, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := "bad"
	if good {
		g = "good"
	}
	r.reports[client+"/"+g+"/"+code]++
}

func (r *recorder) Pingback(client string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pingbacks[client+"/"+strconv.FormatBool(ok)]++
}

func (r *recorder) get(m func(*recorder) map[string]int, k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m(r)[k]
}

// gatedStore holds Create until the test opens the gate: an in.php stuck
// in a slow commit.
type gatedStore struct {
	persist.Store
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Create(ctx context.Context, tasks ...*persist.Task) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.Store.Create(ctx, tasks...)
}

// roundTripper serves an http.Client's requests with a handler, in
// process.
type roundTripper struct{ h http.Handler }

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	var body io.Reader = http.NoBody
	if req.Body != nil {
		body = req.Body
	}
	sreq := req.Clone(req.Context())
	sreq.Body = io.NopCloser(body)
	rt.h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// openBolt opens the world's database file.
func openBolt(dir string) (persist.Store, error) {
	return boltstore.Open(filepath.Join(dir, "gw.db"), &boltstore.Options{NoSync: true})
}
