package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/crashtest"
	"github.com/captchafsm/captchafsm/internal/gateway"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

// The captchafsm binary, built once for the package's tests.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "captchafsm-gateway-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "captchafsm")
		build := exec.Command("go", "build", "-o", binPath, "github.com/captchafsm/captchafsm/cmd/captchafsm")
		var out bytes.Buffer
		build.Stdout, build.Stderr = &out, &out
		if err := build.Run(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out.String())
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// crashPolicy is the engine's timing scaled to the simulator's speed (20),
// with the default submit_rate: the provider's 60-in-3-s rule holds across
// the restarts.
const crashPolicy = `{"first_poll_delay": "250ms", "first_poll_delay_token": "500ms", "poll_interval": "250ms",
 "poll_timeout": "30s", "backoff_base": "100ms", "backoff_max": "500ms", "request_timeout": "5s",
 "max_retries": 20, "max_resubmits": 10, "retry_delays": {"ERROR_NO_SLOT_AVAILABLE": "250ms"}}`

// gatewayProc is one life of the gateway binary.
type gatewayProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan error
}

// startGateway runs the gateway binary on addr and waits for its URL;
// env is added to its environment (a failpoint).
func startGateway(t *testing.T, dir, simURL, addr string, env ...string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(binary(t), "gateway", "--addr", addr, "--keys", filepath.Join(dir, "keys.txt"),
		"--db", filepath.Join(dir, "gw.db"), "--policy", filepath.Join(dir, "policy.json"), "--log-level", "warn")
	cmd.Env = append(append(os.Environ(), "CAPTCHAFSM_API_URL="+simURL, "CAPTCHAFSM_API_KEY="+upKey), env...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &gatewayProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, p.stderr.String())
	go func() { _, _ = io.Copy(io.Discard, out); p.done <- cmd.Wait() }()
	p.url = strings.TrimSpace(line)
	require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, p.url)
	return p
}

// crashClient is one bot: it submits its task, polls every 100 ms until
// the answer, and retries through connection errors (the gateway being
// down), as a careful bot does.
type crashClient struct {
	key, page    string
	pingback     string // the task's pingback URL
	id           int64
	answer       string
	finals       int // final answers received: must be 1
	inTries      int // in.php requests sent
	inLost       int // in.php requests that got no answer
	pollErrors   int
	acceptedTime time.Time
}

func (c *crashClient) run(ctx context.Context, base *atomic.Pointer[string], accepted chan<- struct{}) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	do := func(endpoint string, q url.Values) (string, error) {
		resp, err := hc.PostForm(*base.Load()+"/"+endpoint, q)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return string(b), nil
	}
	q := form(c.key, append(turnstile(c.page), "pingback", c.pingback)...)
	for c.id == 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.inTries++
		a, err := do("in.php", q)
		if err != nil {
			c.inLost++
			<-time.After(100 * time.Millisecond) // a real process: the gateway restarting
			continue
		}
		s, ok := strings.CutPrefix(a, "OK|")
		if !ok {
			return fmt.Errorf("in.php answered %q", a)
		}
		c.id, _ = strconv.ParseInt(s, 10, 64)
	}
	c.acceptedTime = time.Now()
	accepted <- struct{}{}
	for {
		<-time.After(100 * time.Millisecond) // the bot's poll interval, in real time
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a, err := do("res.php", form(c.key, "action", "get", "id", strconv.FormatInt(c.id, 10)))
		if err != nil {
			c.pollErrors++
			continue
		}
		if a != "CAPCHA_NOT_READY" {
			c.answer = a
			c.finals++
			return nil
		}
	}
}

// TestCrashRestart: 200 bots solve through the real gateway binary, which
// dies twice with SIGKILL and is restarted each time on the same address:
// first by its own failpoint right after an in.php answer arrived and
// before the engine committed it (the provider has charged a task the
// database does not know), then killed by the test midway through the
// batch. Every bot gets one answer for its id — the token the database
// holds, or the task's final code — every task of the database ends, and
// every task the provider charged is known to the database or named
// possibly charged in a history: no upstream double submit goes
// unrecorded. Each task's pingback URL is kept with it: a task accepted
// before the second kill and ended after it gets its pingback from the
// third life.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary: not in -short")
	}
	const bots = 200
	dir := t.TempDir()
	sim := providersim.New(providersim.Config{Seed: 13, Speed: 20, Key: upKey,
		Mix: providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.05}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 0.05}}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "policy.json"), []byte(crashPolicy), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "keys.txt"), []byte("alice "+aliceKey+"\nbob "+bobKey+"\n"), 0o600))
	var pbMu sync.Mutex
	pings := map[string][]url.Values{} // by the id the POST names
	pbSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			pbMu.Lock()
			pings[r.PostForm.Get("id")] = append(pings[r.PostForm.Get("id")], r.PostForm)
			pbMu.Unlock()
		}
	}))
	defer pbSrv.Close()
	pingCount := func() int {
		pbMu.Lock()
		defer pbMu.Unlock()
		n := 0
		for _, p := range pings {
			n += len(p)
		}
		return n
	}

	life := startGateway(t, dir, srv.URL, "127.0.0.1:0", "CAPTCHAFSM_FAILPOINT=after-submit:40")
	addr := strings.TrimPrefix(life.url, "http://")
	var base atomic.Pointer[string]
	base.Store(&life.url)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clients := make([]*crashClient, bots)
	accepted := make(chan struct{}, bots)
	errs := make(chan error, bots)
	var wg sync.WaitGroup
	for i := range clients {
		key := aliceKey
		if i%2 == 1 {
			key = bobKey
		}
		page := fmt.Sprintf("crash/%03d", i)
		clients[i] = &crashClient{key: key, page: page, pingback: pbSrv.URL + "/" + page}
	}
	// The bots arrive over four seconds, so that in.php requests and polls
	// are in flight at each kill.
	go func() {
		for _, c := range clients {
			wg.Go(func() {
				if err := c.run(ctx, &base, accepted); err != nil {
					errs <- err
				}
			})
			<-time.After(20 * time.Millisecond)
		}
	}()
	got := 0
	waitAccepted := func(n int) {
		for got < n {
			select {
			case <-accepted:
				got++
			case err := <-errs:
				require.NoError(t, err)
			case <-ctx.Done():
				t.Fatal("the bots did not get their ids in time")
			}
		}
	}
	// Life 1 kills itself at its 40th in.php answer.
	select {
	case <-life.done:
	case <-ctx.Done():
		t.Fatal("the failpoint did not fire")
	}
	require.Contains(t, life.stderr.String(), "failpoint after-submit:40")
	atFirstKill := sim.Ledger()
	// Life 2 is killed from outside midway through the batch: once the
	// provider has seen 120 in.php requests.
	life = startGateway(t, dir, srv.URL, addr)
	for sim.Ledger().Requests[providersim.KindSubmit] < 120 {
		select {
		case <-time.After(20 * time.Millisecond): // a real process: watch it work
		case err := <-errs:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("life 2 did not reach 120 submits in time")
		}
	}
	require.NoError(t, life.cmd.Process.Signal(syscall.SIGKILL))
	<-life.done
	atSecondKill := sim.Ledger()
	secondKill := time.Now()
	// Life 3 finishes the batch.
	life = startGateway(t, dir, srv.URL, addr)
	require.Equal(t, "http://"+addr, life.url, "restarted on the same address")
	waitAccepted(bots)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Pingbacks leave beside the answers: wait until none has come for a
	// second (a real process: the POSTs are its own).
	for last, quiet := pingCount(), 0; quiet < 10 && ctx.Err() == nil; {
		<-time.After(100 * time.Millisecond)
		if n := pingCount(); n != last {
			last, quiet = n, 0
		} else {
			quiet++
		}
	}
	require.NoError(t, life.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, <-life.done, life.stderr.String())

	st, err := openBolt(dir)
	require.NoError(t, err)
	defer st.Close()
	led := sim.Ledger()
	report, err := crashtest.Check(context.Background(), st, led, crashtest.Options{})
	require.NoError(t, err)
	assert.Empty(t, report.Violations, report.String())

	bg := context.Background()
	var done, failed, inLost, pollErrors, pingbacks, carriedOver int
	mine := map[string]bool{}
	for _, c := range clients {
		require.Equal(t, 1, c.finals, "bot %s: one answer", c.page)
		client := "alice"
		if c.key == bobKey {
			client = "bob"
		}
		ref := gateway.Ref(client, c.id)
		mine[ref] = true
		tk, err := st.GetByRef(bg, ref)
		require.NoError(t, err, "bot %s: its id names a task", c.page)
		assert.Equal(t, "https://example.com/"+c.page, tk.Params["pageurl"], "the id names the bot's own task")
		switch tk.State {
		case states.Done:
			done++
			assert.Equal(t, "OK|"+tk.Token, c.answer, "bot %s gets the stored token", c.page)
		case states.Failed:
			failed++
			assert.True(t, strings.HasPrefix(c.answer, "ERROR_"), "bot %s: %q", c.page, c.answer)
		default:
			t.Errorf("bot %s: task %s is %s", c.page, tk.ID, tk.State)
		}
		inLost += c.inLost
		pollErrors += c.pollErrors

		// Its pingback: at most one, with the answer the bot polled; and
		// one whenever the task ended in the third life.
		pbMu.Lock()
		got := pings[strconv.FormatInt(c.id, 10)]
		pbMu.Unlock()
		require.LessOrEqual(t, len(got), 1, "bot %s: pingbacks %v", c.page, got)
		h, err := st.History(bg, tk.ID)
		require.NoError(t, err)
		endedLate := h[len(h)-1].At.After(secondKill)
		if len(got) == 1 {
			assert.Equal(t, strings.TrimPrefix(c.answer, "OK|"), got[0].Get("code"), "bot %s: the pingback carries the answer", c.page)
		} else if endedLate {
			t.Errorf("bot %s: task %s ended in the third life (%s) without its pingback", c.page, tk.ID, h[len(h)-1].At)
		}
		if endedLate && c.acceptedTime.Before(secondKill) {
			carriedOver++
		}
		if len(got) == 1 {
			pingbacks++
		}
	}
	assert.Positive(t, carriedOver, "some tasks accepted before the second kill ended after it (their pingback URL came from the database)")
	tasks, err := st.List(bg, persist.ListOptions{})
	require.NoError(t, err)
	extra := 0
	for _, tk := range tasks {
		if !mine[tk.Ref] {
			extra++ // an in.php the kill cut off after its commit: its bot asked again
		}
	}
	assert.LessOrEqual(t, extra, inLost, "a task no bot holds comes from an in.php answer lost in the kill")
	figures := map[string]any{
		"bots": bots, "done": done, "failed": failed, "tasks": len(tasks), "tasks_of_lost_answers": extra,
		"in_php_lost_to_the_kill": inLost, "polls_refused_while_down": pollErrors,
		"pingbacks": pingbacks, "pingbacks_across_the_kill": carriedOver,
		"charged": report.Charged, "orphaned": report.Orphaned, "possibly_charged": report.PossiblyCharged,
		"submits_at_kills": []int{atFirstKill.Requests[providersim.KindSubmit], atSecondKill.Requests[providersim.KindSubmit]},
		"submits":          led.Requests[providersim.KindSubmit], "res_php_upstream": led.Requests[providersim.KindPoll], "bans": led.Bans,
	}
	b, _ := json.Marshal(figures)
	t.Logf("gateway-crash-figures: %s", b)
	assert.Positive(t, done)
	assert.Positive(t, report.PossiblyCharged, "the failpoint's submit is recorded possibly charged")
}
