package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// localKey is a gateway client's key in these tests.
const localKey = "1a2b3c4d5e6f70819a2b3c4d5e6f7081"

func TestGatewayRefusesBadConfigBeforeOpeningAnything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		keys string
		env  map[string]string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:8090"}, "bot " + localKey, nil, "listens beyond loopback, and the gateway speaks plain HTTP"},
		{[]string{"--addr", ":8090"}, "bot " + localKey, nil, "put a TLS-terminating proxy in front"},
		{[]string{"--addr", "8090"}, "bot " + localKey, nil, `--addr "8090": want host:port`},
		{nil, "", nil, "--keys FILE is required"},
		{nil, "@missing", nil, "no such file"},
		{nil, localKey, nil, "line 1: want NAME KEY: the gateway names each client"},
		{nil, "# clients\nbot " + localKey + "\n-x " + strings.Repeat("e", 32), nil, `line 3: name "-x"`},
		{nil, "bot " + localKey + "\nbot " + strings.Repeat("e", 32), nil, "line 2: the name bot is given twice (first on line 1)"},
		{nil, "bot " + localKey + "\nbot2 " + localKey, nil, "line 2: the key is given twice"},
		{nil, "bot 123", nil, "line 1: the key is not 32 hex characters"},
		{nil, "bot " + strings.ToUpper(testKey), nil, "client bot has the provider's own key"},
		{[]string{"--dedup-window", "-1s"}, "bot " + localKey, nil, "--dedup-window -1s: must not be negative"},
		{[]string{"--balance-cache", "0s"}, "bot " + localKey, nil, "--balance-cache 0s: must be positive"},
		{[]string{"--pingback-allow", "http://x/y"}, "bot " + localKey, nil, `--pingback-allow "http://x/y"`},
		{[]string{"--pingback-allow", "bot.internal:8080"}, "bot " + localKey, nil, "without a port"},
		{[]string{"--log-level", "loud"}, "bot " + localKey, nil, `--log-level "loud"`},
		{nil, "bot " + localKey, map[string]string{EnvAPIKey: ""}, "no API key"},
	} {
		w := newWorld(t)
		for k, v := range tc.env {
			w.env[k] = v
		}
		args := append([]string{"gateway"}, tc.args...)
		switch tc.keys {
		case "":
		case "@missing":
			args = append(args, "--keys", "missing.txt")
		default:
			args = append(args, "--keys", w.file("keys.txt", tc.keys))
		}
		r := w.run(args...)
		assert.Equal(t, ExitUsage, r.code, args)
		assert.Contains(t, r.err, tc.want, args)
		assert.NotContains(t, strings.ToLower(r.err), localKey, "errors never repeat a key")
		assert.Empty(t, r.out)
		_, err := os.Stat(w.db)
		assert.ErrorIs(t, err, os.ErrNotExist, "%v: nothing is opened before the command line is checked", args)
	}
}

// gatewaying is a gateway command running in the test.
type gatewaying struct {
	base, metrics string
	stop          func() (code int, stderr string)
}

func (w *world) startGateway(args ...string) *gatewaying {
	w.t.Helper()
	pr, pw := io.Pipe()
	errb := &syncBuffer{}
	root := w.root()
	root.SetOut(pw)
	root.SetErr(errb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	keys := w.file("keys.txt", "# local clients\nscraper "+localKey+"\n")
	go func() {
		done <- Execute(ctx, root, append([]string{"gateway", "--policy", w.policy, "--json", "--addr", "127.0.0.1:0", "--keys", keys}, args...))
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(w.t, err, errb.String())
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var first struct{ URL, In, Res, Dashboard, Metrics string }
	require.NoError(w.t, json.Unmarshal([]byte(line), &first), line)
	require.Regexp(w.t, `^http://127\.0\.0\.1:\d+$`, first.URL)
	assert.Equal(w.t, first.URL+"/in.php", first.In)
	assert.Equal(w.t, first.URL+"/res.php", first.Res)
	g := &gatewaying{base: first.URL, metrics: first.Metrics}
	stopped := false
	g.stop = func() (int, string) {
		if !stopped {
			stopped = true
			cancel()
			return <-done, errb.String()
		}
		return ExitOK, errb.String()
	}
	w.t.Cleanup(func() { g.stop() })
	return g
}

// TestGatewayEndToEnd: a client of the provider's API (this project's
// own) solves through the gateway with its local key; the dashboard shows
// the client's name, the metrics count per client, and SIGINT stops it
// cleanly.
func TestGatewayEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors(), Key: testKey})
	g := w.startGateway()

	c, err := provider.New(provider.Config{BaseURL: g.base, Key: localKey})
	require.NoError(t, err)
	ctx := context.Background()
	id, err := c.Submit(ctx, provider.Request{Method: "turnstile", Params: map[string]string{
		"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/signup"}})
	require.NoError(t, err)
	assert.Regexp(t, `^\d{16}$`, id, "a numeric id")
	// Polls cost nothing upstream: the client may poll as fast as it likes
	// (the simulator solves in milliseconds at its speed).
	var token string
	for range 100_000 {
		a, err := c.Poll(ctx, []string{id})
		require.NoError(t, err)
		if a[0].Code == "" {
			token = a[0].Token
			break
		}
		require.Equal(t, "CAPCHA_NOT_READY", a[0].Code)
	}
	assert.NotEmpty(t, token)
	bal, err := c.Balance(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, "100", bal, "the provider's balance, charged for the task")

	other, err := provider.New(provider.Config{BaseURL: g.base, Key: strings.Repeat("d", 32)})
	require.NoError(t, err)
	_, err = other.Balance(ctx)
	assert.ErrorIs(t, err, &provider.APIError{Code: "ERROR_KEY_DOES_NOT_EXIST"})

	body := get(t, g.base+"/")
	assert.Contains(t, body, "gw:scraper:"+id, "the dashboard shows the task's client by name")
	body = get(t, g.metrics)
	assert.Contains(t, body, `captchafsm_gateway_answers_total{client="scraper",code="OK",request="in.php"} 1`)
	assert.Contains(t, body, `captchafsm_gateway_tasks_settled_total{client="scraper",state="Done"} 1`)
	assert.Contains(t, body, `captchafsm_gateway_answers_total{client="-",code="ERROR_KEY_DOES_NOT_EXIST",request="getbalance"} 1`)
	assert.Contains(t, body, `captchafsm_tasks{state="Done"} 1`)

	code, stderr := g.stop()
	assert.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stderr, "gateway serving")
	assert.Contains(t, stderr, `"clients":"scraper"`)
	assertNoKey(t, stderr)
	assert.NotContains(t, strings.ToLower(stderr), localKey)
	led := w.sim.Sim.Ledger()
	assert.Equal(t, 1, led.Requests[providersim.KindSubmit])
	assert.Equal(t, 1, led.Requests[providersim.KindBalance], "one getbalance upstream")
	assert.Less(t, led.Requests[providersim.KindPoll], 50, "the client's polls never reach the provider")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// TestGatewayBeyondLoopbackSaysHowToPutTLSInFront: --allow-remote lets the
// gateway listen beyond loopback, over plain HTTP where every client's key
// travels in the clear; it says so when it starts, with how to put a
// TLS-terminating proxy in front, as the refusal without the flag does. On
// loopback it says nothing of the kind.
func TestGatewayBeyondLoopbackSaysHowToPutTLSInFront(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors(), Key: testKey})
	keys := w.file("keys.txt", "scraper "+localKey+"\n")
	token := w.file("token.txt", strings.Repeat("t", 32)+"\n")
	// started runs the gateway until it has printed its URL, stops it, and
	// returns its stderr.
	started := func(args ...string) string {
		pr, pw := io.Pipe()
		errb := &syncBuffer{}
		root := w.root()
		root.SetOut(pw)
		root.SetErr(errb)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- Execute(ctx, root, append([]string{"gateway", "--policy", w.policy, "--keys", keys}, args...))
			pw.Close()
		}()
		_, err := bufio.NewReader(pr).ReadString('\n')
		require.NoError(t, err, errb.String())
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		cancel()
		require.Equal(t, ExitOK, <-done, errb.String())
		return errb.String()
	}

	stderr := started("--addr", "0.0.0.0:0", "--allow-remote", "--token-file", token)
	assert.Contains(t, stderr, "level=WARN")
	assert.Contains(t, stderr, "plain HTTP")
	assert.Contains(t, stderr, "caddy reverse-proxy --from captcha.example.com --to 127.0.0.1:")

	stderr = started("--addr", "127.0.0.1:0")
	assert.NotContains(t, stderr, "plain HTTP")
}
