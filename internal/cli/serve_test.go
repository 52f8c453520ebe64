package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

const serveToken = "serve-test-token-0123456789abcdef"

func TestServeRefusesBadConfigBeforeOpeningAnything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:8080"}, nil, "--addr 0.0.0.0:8080 listens beyond loopback: pass --token-file FILE (or set CAPTCHAFSM_TOKEN)"},
		{[]string{"--addr", ":8080"}, nil, "--addr :8080 listens beyond loopback"},
		{[]string{"--addr", "192.0.2.10:8080"}, nil, "listens beyond loopback"},
		{[]string{"--addr", "dashboard.example:8080"}, nil, "listens beyond loopback"},
		{[]string{"--addr", "8080"}, nil, `--addr "8080": want host:port`},
		{[]string{"--token-file", "missing.txt"}, nil, "--token-file missing.txt: no such file"},
		{[]string{"--token-file", "@short"}, nil, "the token must be at least 16 characters"},
		{nil, map[string]string{EnvToken: "short"}, "CAPTCHAFSM_TOKEN: the token must be at least 16 characters"},
		{[]string{"--log-level", "loud"}, nil, `--log-level "loud"`},
		{nil, map[string]string{EnvAPIKey: "nope"}, "CAPTCHAFSM_API_KEY: the key must be 32 hex characters"},
	} {
		w := newWorld(t)
		for k, v := range tc.env {
			w.env[k] = v
		}
		args := append([]string{"serve"}, tc.args...)
		for i, a := range args {
			if a == "@short" {
				args[i] = w.file("short.txt", "abc\n")
			}
		}
		r := w.run(args...)
		assert.Equal(t, ExitUsage, r.code, args)
		assert.Contains(t, r.err, tc.want, args)
		assert.Empty(t, r.out)
		_, err := os.Stat(w.db)
		assert.ErrorIs(t, err, os.ErrNotExist, "%v: nothing is opened before the command line is checked", args)
	}
}

func TestServeAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	w := newWorld(t)
	r := w.run("serve", "--addr", ln.Addr().String())
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "--addr "+ln.Addr().String()+": bind: address already in use")
	_, err = os.Stat(w.db)
	assert.ErrorIs(t, err, os.ErrNotExist, "the database is not opened when the address is taken")
}

// served is a serve command running in the background.
type served struct {
	t      *testing.T
	url    string
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer
}

// syncBuffer is a strings.Builder safe for the logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// startServe runs serve with args and reads its URL from stdout (--json).
func (w *world) startServe(args ...string) *served {
	w.t.Helper()
	pr, pw := io.Pipe()
	s := &served{t: w.t, done: make(chan int, 1), stderr: &syncBuffer{}}
	root := w.root()
	root.SetOut(pw)
	root.SetErr(s.stderr)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		s.done <- Execute(ctx, root, append([]string{"serve", "--policy", w.policy, "--json", "--addr", "127.0.0.1:0"}, args...))
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(w.t, err, s.stderr.String())
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var first struct{ URL, Metrics string }
	require.NoError(w.t, json.Unmarshal([]byte(line), &first), line)
	require.Regexp(w.t, `^http://127\.0\.0\.1:\d+/$`, first.URL)
	assert.Equal(w.t, first.URL+"metrics", first.Metrics)
	s.url = first.URL
	w.t.Cleanup(func() { s.stop() })
	return s
}

// stop interrupts serve and returns its exit status.
func (s *served) stop() int {
	s.cancel()
	code, ok := <-s.done
	if !ok {
		return ExitOK
	}
	close(s.done)
	return code
}

// call sends one request with the token.
func (s *served) call(method, path, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(b)
}

// TestServeEndToEnd resumes a task left by a crash, takes a new one through
// the API, serves the metrics, and stops cleanly on a signal.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	crashed := w.crashedTasks(1, map[string]string{"proxy": "bob:hunter2@10.0.0.1:3128", "proxytype": "HTTP"})
	w.env[EnvToken] = serveToken // a token on loopback too: checked on every request
	s := w.startServe()

	status, body := s.call("GET", "/api/tasks/"+crashed[0]+"?wait=30s", "")
	require.Equal(t, http.StatusOK, status, body)
	var task struct {
		State  states.State
		Params map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(body), &task))
	assert.Equal(t, states.Done, task.State, "serve resumes the tasks of the database")
	assert.Equal(t, "***:***@10.0.0.1:3128", task.Params["proxy"])
	assert.NotContains(t, body, "hunter2")

	status, body = s.call("POST", "/api/tasks", `{"method": "turnstile", "ref": "via-api", "params": {"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/"}}`)
	require.Equal(t, http.StatusCreated, status, body)
	status, body = s.call("GET", "/api/tasks/via-api?wait=30s", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"state": "Done"`)

	status, body = s.call("GET", "/api/tasks/"+crashed[0]+"/history", "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"event": "possibly_charged"`, "the resume is in the history")

	status, body = s.call("GET", "/metrics", "")
	require.Equal(t, http.StatusOK, status)
	for _, want := range []string{
		`captchafsm_tasks{state="Done"} 2`,
		`captchafsm_possibly_charged_total 1`,
		`captchafsm_breaker_open 0`,
		`captchafsm_requests_total{endpoint="in.php",outcome="ok"} 2`,
		"go_goroutines ", "process_start_time_seconds ",
	} {
		assert.Contains(t, body, want)
	}

	resp, err := http.Get(s.url + "api/summary")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token, no answer")

	assert.Equal(t, ExitOK, s.stop(), s.stderr.String())
	logs := s.stderr.String()
	assert.Contains(t, logs, `"msg":"serving"`)
	assert.Contains(t, logs, `"resumed":1`)
	assert.Contains(t, logs, `"msg":"transition"`, "the engine's structured logs")
	assert.Contains(t, logs, `"msg":"stopped: unfinished tasks stay in the database"`)
	assert.NotContains(t, logs, serveToken)
	assertNoKey(t, logs)

	// The database is free again.
	st := w.store()
	defer st.Close()
	counts, err := st.Count(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, counts[states.Done])
}

// TestServeHoldsTheDatabase: while serve runs, the database is locked; the
// API is the way in.
func TestServeHoldsTheDatabase(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	s := w.startServe()
	r := w.run("serve", "--addr", "127.0.0.1:0")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "database in use by another process")
	assert.Equal(t, ExitOK, s.stop())
}

func findChromium() string {
	if p := os.Getenv("CAPTCHAFSM_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestServeInBrowser opens what serve serves in headless Chromium: the
// task list, then a task's timeline.
func TestServeInBrowser(t *testing.T) {
	t.Parallel()
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium: install Debian's chromium package (apt-get install -y chromium) or set CAPTCHAFSM_CHROMIUM to run the browser test")
	}
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	tokenFile := w.file("token", serveToken+"\n")
	s := w.startServe("--token-file", tokenFile)
	var ids []string
	for _, ref := range []string{"browser-1", "browser-2"} {
		status, body := s.call("POST", "/api/tasks", `{"method": "hcaptcha", "ref": "`+ref+`", "params": {"sitekey": "10000000-ffff-ffff-ffff-000000000001", "pageurl": "https://example.com/`+ref+`"}}`)
		require.Equal(t, http.StatusCreated, status, body)
		var res struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(body), &res))
		ids = append(ids, res.ID)
		status, body = s.call("GET", "/api/tasks/"+res.ID+"?wait=30s", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `"state": "Done"`)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(s.url+"?token="+serveToken),
		chromedp.WaitVisible(chromedp.CSS("#tasks")),
	))
	rows, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("#tasks tbody tr[data-id]")))
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, ids[1], rows[0].AttributeValue("data-id"), "newest first")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-id="`+ids[0]+`"] a.task-link`)),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	))
	timeline, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#timeline")))
	require.NoError(t, err)
	for _, want := range []string{"created", "submit_sending", "submit_accepted", "solved"} {
		assert.Contains(t, timeline, want)
	}
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#task-state")))
	require.NoError(t, err)
	assert.Equal(t, "Done", state)
	assert.Equal(t, ExitOK, s.stop())
}
