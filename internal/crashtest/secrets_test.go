package crashtest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Recognisable secrets: two API keys (the simulator knows only the first)
// and the passwords of a proxy and of a page URL in task parameters.
const (
	secretKey      = "c0ffee00deadbeef1234567890abcdef"
	secretKey2     = "feedface0badcafe9876543210fedcba"
	proxyPassword  = "Pr0xyS3cretPw"
	pagePassword   = "PageS3cretPw"
	secretsProxy   = "proxyuser:" + proxyPassword + "@10.1.2.3:3128"
	secretsPageURL = "https://pageuser:" + pagePassword + "@example.com/login"
)

// secretsPolicy keeps the failing runs short: retries come fast and a
// held answer times out after a second.
const secretsPolicy = `{"first_poll_delay": "50ms", "first_poll_delay_token": "200ms", "poll_interval": "100ms",
 "poll_timeout": "15s", "backoff_base": "50ms", "backoff_max": "200ms", "request_timeout": "1s", "max_retries": 4,
 "retry_delays": {"ERROR_NO_SLOT_AVAILABLE": "100ms"}}`

// transcript collects everything a user or a log collector could see.
type transcript struct {
	t    *testing.T
	buf  strings.Builder
	runs int
}

func (tr *transcript) add(what string, r result) result {
	tr.runs++
	fmt.Fprintf(&tr.buf, "==> %s (exit %d)\n%s\n%s\n", what, r.code, r.stdout, r.stderr)
	return r
}

// TestSecretsEndToEnd runs the CLI with a recognisable key against a
// simulator that injects every transport fault at every step (in.php,
// res.php, getbalance, report), runs that fail (an unknown key, a refused
// connection, a bad key file) and serve with debug logs, then scans every
// output, every error, every log line and every database file: the key
// never appears, and the passwords of proxies and page URLs given in task
// parameters never appear in any output.
func TestSecretsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fault := providersim.FaultRates{HTTP500: 0.05, HTML502: 0.05, Drop: 0.05, Slow: 0.03, SlowDelay: 3 * time.Second}
	sim := providersim.New(providersim.Config{Seed: 9, Key: secretKey, Speed: 50,
		Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.1, "ERROR_BAD_PARAMETERS": 0.05},
			Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.1}},
		Faults: providersim.Faults{Submit: fault, Poll: fault,
			Balance: providersim.FaultRates{Drop: 1}, Report: providersim.FaultRates{Drop: 0.5, HTTP500: 0.5}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	// A port nothing listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	policy := filepath.Join(dir, "policy.json")
	require.NoError(t, os.WriteFile(policy, []byte(secretsPolicy), 0o600))
	tasks := filepath.Join(dir, "tasks.jsonl")
	var lines bytes.Buffer
	for i := range 24 {
		params := map[string]any{"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": fmt.Sprintf("https://example.com/%d", i)}
		method := "turnstile"
		switch i % 4 {
		case 1:
			params["proxy"], params["proxytype"] = secretsProxy, "HTTP"
		case 2:
			params["pageurl"] = secretsPageURL
		case 3:
			method = "base64"
			params = map[string]any{"body": pngBase64(120), "textinstructions": fmt.Sprint("image ", i)}
		}
		b, err := json.Marshal(map[string]any{"method": method, "params": params, "ref": fmt.Sprint("s-", i)})
		require.NoError(t, err)
		lines.Write(append(b, '\n'))
	}
	require.NoError(t, os.WriteFile(tasks, lines.Bytes(), 0o600))
	few := filepath.Join(dir, "few.jsonl") // for the failing runs
	require.NoError(t, os.WriteFile(few, bytes.Join(bytes.SplitAfter(lines.Bytes(), []byte("\n"))[:4], nil), 0o600))
	keyFile := filepath.Join(dir, "bad.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(secretKey+"zz\n"), 0o600))

	db := filepath.Join(dir, "main.db")
	env := []string{"CAPTCHAFSM_API_KEY=" + secretKey, "CAPTCHAFSM_API_URL=" + srv.URL, "CAPTCHAFSM_DB=" + db}
	pol := []string{"--policy", policy}
	tr := &transcript{t: t}

	// The main run, then everything that shows its tasks.
	r := tr.add("run --json", runCLI(t, env, append([]string{"run", "--from", tasks, "--json"}, pol...)...))
	require.Contains(t, []int{0, 2}, r.code, r.stderr)
	var ids, done []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var res struct{ ID, State string }
		require.NoError(t, json.Unmarshal([]byte(line), &res), line)
		ids = append(ids, res.ID)
		if res.State == "Done" {
			done = append(done, res.ID)
		}
	}
	require.Len(t, ids, 24)
	require.NotEmpty(t, done)
	tr.add("list", runCLI(t, env, "list"))
	tr.add("list --json", runCLI(t, env, "list", "--json"))
	for _, id := range ids {
		tr.add("history --json", runCLI(t, env, "history", id, "--json"))
		tr.add("history", runCLI(t, env, "history", id))
	}
	tr.add("replay --all --json", runCLI(t, env, "replay", "--all", "--json"))
	tr.add("solve --json", runCLI(t, env, append([]string{"solve", "--method", "turnstile", "--param", "sitekey=0x4AAAAAAAC3DHQFLr1GavRN",
		"--param", "pageurl=" + secretsPageURL, "--param", "proxy=" + secretsProxy, "--param", "proxytype=HTTP", "--json"}, pol...)...))
	// The calls whose every answer is lost (getbalance) or fails (report).
	r = tr.add("balance", runCLI(t, env, append([]string{"balance"}, pol...)...))
	assert.NotEqual(t, 0, r.code, "balance answers are all dropped")
	tr.add("balance --json", runCLI(t, env, append([]string{"balance", "--json"}, pol...)...))
	for _, id := range done[:min(4, len(done))] {
		tr.add("report --bad", runCLI(t, env, append([]string{"report", id, "--bad"}, pol...)...))
	}

	// Failing runs: a key the provider does not know, a refused
	// connection (tasks fail on transport errors), a malformed key file.
	env2 := []string{"CAPTCHAFSM_API_KEY=" + secretKey2, "CAPTCHAFSM_API_URL=" + srv.URL, "CAPTCHAFSM_DB=" + filepath.Join(dir, "unknown-key.db")}
	r = tr.add("run, unknown key", runCLI(t, env2, append([]string{"run", "--from", few}, pol...)...))
	assert.Equal(t, 3, r.code, "an unknown key fails the tasks it answered and parks the rest (the breaker): %s", r.stderr)
	tr.add("list, unknown key", runCLI(t, env2, "list", "--json"))
	tr.add("history, unknown key", runCLI(t, env2, "history", "s-0", "--json"))
	env3 := []string{"CAPTCHAFSM_API_KEY=" + secretKey, "CAPTCHAFSM_API_URL=" + refused, "CAPTCHAFSM_DB=" + filepath.Join(dir, "refused.db")}
	r = tr.add("run, refused", runCLI(t, env3, append([]string{"run", "--from", few, "--json"}, pol...)...))
	assert.Equal(t, 2, r.code, "refused connections fail the tasks: %s", r.stderr)
	tr.add("history, refused", runCLI(t, env3, "history", "s-1"))
	tr.add("balance, refused", runCLI(t, env3, "balance"))
	tr.add("solve, refused", runCLI(t, env3, append([]string{"solve", "--method", "turnstile", "--param", "sitekey=x",
		"--param", "pageurl=https://example.com"}, pol...)...))
	r = tr.add("bad key file", runCLI(t, []string{"CAPTCHAFSM_DB=" + db}, "run", "--from", tasks, "--key-file", keyFile))
	assert.Equal(t, 1, r.code)

	// serve, with debug logs: its API, pages and metrics.
	tr.buf.WriteString(serveTranscript(t, env, pol))

	out := tr.buf.String()
	for _, secret := range []string{secretKey, secretKey2, proxyPassword, pagePassword} {
		assert.NotContains(t, strings.ToLower(out), strings.ToLower(secret), "a secret leaked into the outputs")
	}
	for _, f := range []string{db, filepath.Join(dir, "unknown-key.db"), filepath.Join(dir, "refused.db")} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, key := range []string{secretKey, secretKey2} {
			assert.NotContains(t, strings.ToLower(string(b)), key, "the key is in %s", filepath.Base(f))
		}
		assert.Contains(t, string(b), proxyPassword, "the database keeps the proxy to resend (the scan reads the file)")
	}
	assert.NotContains(t, out, "panic")
	// The faults were there to be leaked through: every getbalance (a GET
	// whose URL holds the key, so its *url.Error would) was dropped, and
	// the random ones hit the rest.
	led := sim.Ledger()
	assert.Positive(t, led.Faults[providersim.FaultKey{Kind: providersim.KindBalance, Fault: providersim.FaultDrop}])
	assert.Greater(t, len(led.Faults), 3, "faults of several kinds: %v", led.Faults)
	for _, want := range []string{"***:***@10.1.2.3:3128", "connection refused", "ERROR_KEY_DOES_NOT_EXIST", "res.php"} {
		assert.Contains(t, out, want, "the outputs show the redacted values and the errors")
	}
	t.Logf("%d commands, %d bytes of output scanned; faults injected: %v", tr.runs, len(out), led.Faults)
}

// serveTranscript runs serve with debug logs, submits a task with a proxy
// through its API, reads every endpoint, stops it with SIGINT and returns
// all it saw.
func serveTranscript(t *testing.T, env, pol []string) string {
	t.Helper()
	var all strings.Builder
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "debug", "--json"}, pol...)...)
	cmd.Env = childEnv(env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	rd := bufio.NewReader(stdout)
	first, err := rd.ReadString('\n')
	require.NoError(t, err, "serve's first line")
	all.WriteString(first)
	var urls struct{ URL, Metrics string }
	require.NoError(t, json.Unmarshal([]byte(first), &urls))

	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) string {
		resp, err := client.Get(strings.TrimSuffix(urls.URL, "/") + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		fmt.Fprintf(&all, "==> GET %s (%d)\n%s\n", path, resp.StatusCode, b)
		return string(b)
	}
	body := fmt.Sprintf(`{"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":%q,"proxy":%q,"proxytype":"HTTP"},"ref":"serve-1"}`,
		secretsPageURL, secretsProxy)
	resp, err := client.Post(urls.URL+"api/tasks", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	fmt.Fprintf(&all, "==> POST /api/tasks\n%s\n", b)
	var sub struct{ ID string }
	require.NoError(t, json.Unmarshal(b, &sub))
	get("/api/tasks/" + sub.ID + "?wait=20s")
	get("/api/tasks/" + sub.ID + "/history")
	get("/api/tasks")
	get("/api/tasks/s-1")
	get("/api/summary")
	get("/")
	get("/tasks/" + sub.ID)
	get("/metrics")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	rest, _ := io.ReadAll(rd)
	all.Write(rest)
	require.NoError(t, cmd.Wait(), "serve exits 0 on SIGINT: %s", stderr.String())
	logs := stderr.String()
	require.Contains(t, logs, `"level":"DEBUG"`, "debug logs were written")
	fmt.Fprintf(&all, "==> serve logs\n%s\n", logs)
	return all.String()
}
