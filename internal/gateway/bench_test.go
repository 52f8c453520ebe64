package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// The comparison of TestGatewayVsDirect and BenchmarkGatewayVsDirect:
// bots that poll every second, as the official clients do, through the
// gateway or straight at the provider.
const (
	benchSizeEnv    = "CAPTCHAFSM_GATEWAY_BENCH"
	benchJSONPrefix = "gateway-bench: "
	benchSize       = 1000 // the benchmark's bots
	benchTestSize   = 200  // every test run's
	benchArrival    = 15   // bots starting per second, under the provider's 20 in.php/s
)

// benchFigures are one mode's measurements, in virtual time.
type benchFigures struct {
	Mode           string  `json:"mode"`
	Bots           int     `json:"bots"`
	Solved         int     `json:"solved"`
	Upstream       int     `json:"upstream_requests"` // every request the provider saw
	UpstreamPolls  int     `json:"upstream_res_php"`  // res.php action=get among them
	ClientPolls    int     `json:"client_polls"`      // res.php requests the bots sent
	Bans           int     `json:"bans"`
	AnswerP50      float64 `json:"answer_p50_s"` // in.php sent → answer received
	AnswerP99      float64 `json:"answer_p99_s"`
	LagP50         float64 `json:"lag_p50_s"` // answer ready at the provider → received by the bot
	LagP99         float64 `json:"lag_p99_s"`
	VirtualSeconds float64 `json:"virtual_s"`
}

func (f benchFigures) perSolve() float64 { return float64(f.Upstream) / float64(max(f.Solved, 1)) }

// benchReport is both modes of one run.
type benchReport struct {
	Gateway, Direct benchFigures
}

func (r benchReport) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bots polling every 1 s, %d starting per second, half images, half turnstile (virtual time)\n", r.Gateway.Bots, benchArrival)
	fmt.Fprintf(&b, "%-8s %8s %14s %12s %12s %9s %9s %9s %9s\n", "mode", "solved", "upstream/solve", "upstream", "bot polls", "ans p50", "ans p99", "lag p50", "lag p99")
	for _, f := range []benchFigures{r.Gateway, r.Direct} {
		fmt.Fprintf(&b, "%-8s %8d %14.2f %12d %12d %8.2fs %8.2fs %8.2fs %8.2fs\n", f.Mode, f.Solved, f.perSolve(), f.Upstream,
			f.ClientPolls, f.AnswerP50, f.AnswerP99, f.LagP50, f.LagP99)
	}
	fmt.Fprintf(&b, "upstream requests per solve, gateway ÷ direct: %.3f\n", r.Gateway.perSolve()/r.Direct.perSolve())
	return b.String()
}

// benchTask is bot i's task: an image or a turnstile, each unique.
func benchTask(i int) url.Values {
	q := url.Values{}
	if i%2 == 0 {
		img := make([]byte, 300)
		copy(img, "\x89PNG\r\n\x1a\n")
		copy(img[8:], fmt.Sprintf("bot-%d", i))
		q.Set("method", "base64")
		q.Set("body", base64.StdEncoding.EncodeToString(img))
		return q
	}
	q.Set("method", "turnstile")
	q.Set("sitekey", "0x4AAAAAAAC3DHQFLr1GavRN")
	q.Set("pageurl", fmt.Sprintf("https://example.com/bench/%d", i))
	return q
}

// benchBot is one bot's run.
type benchBot struct {
	sent, answered time.Time
	id             int64
	answer         string
	polls          int
}

// runBots starts n bots at benchArrival a second; each submits, then polls
// its id every second until the answer. send sends one request.
func runBots(t *testing.T, n int, key string, send func(endpoint string, q url.Values) string) []*benchBot {
	bots := make([]*benchBot, n)
	var wg sync.WaitGroup
	for i := range bots {
		b := &benchBot{}
		bots[i] = b
		wg.Go(func() {
			q := benchTask(i)
			q.Set("key", key)
			b.sent = time.Now()
			a := send("in.php", q)
			s, ok := strings.CutPrefix(a, "OK|")
			if !assert.True(t, ok, "bot %d: in.php answered %q", i, a) {
				return
			}
			b.id, _ = strconv.ParseInt(s, 10, 64)
			for {
				<-time.After(time.Second)
				b.polls++
				a := send("res.php", url.Values{"key": {key}, "action": {"get"}, "id": {s}})
				if a != "CAPCHA_NOT_READY" {
					b.answer, b.answered = a, time.Now()
					return
				}
			}
		})
		<-time.After(time.Second / benchArrival)
	}
	wg.Wait()
	return bots
}

// measure fills f from the bots and the provider's ledger; providerID
// gives the provider's id of a bot's answer.
func measure(f *benchFigures, bots []*benchBot, led providersim.Ledger, providerID func(*benchBot) string) {
	ready := map[string]time.Time{}
	for _, tr := range led.Tasks {
		ready[strconv.FormatInt(tr.ID, 10)] = tr.Ready
	}
	var answer, lag []time.Duration
	for _, b := range bots {
		f.ClientPolls += b.polls
		if !strings.HasPrefix(b.answer, "OK|") {
			continue
		}
		f.Solved++
		answer = append(answer, b.answered.Sub(b.sent))
		if r, ok := ready[providerID(b)]; ok {
			lag = append(lag, b.answered.Sub(r))
		}
	}
	for _, c := range led.Requests {
		f.Upstream += c
	}
	f.Upstream -= led.Requests[providersim.KindPollIDs] // a count of ids, not of requests
	f.UpstreamPolls = led.Requests[providersim.KindPoll]
	for _, c := range led.Bans {
		f.Bans += c
	}
	f.AnswerP50, f.AnswerP99 = quantile(answer, 0.5), quantile(answer, 0.99)
	f.LagP50, f.LagP99 = quantile(lag, 0.5), quantile(lag, 0.99)
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(int(float64(len(ds))*q), len(ds)-1)].Seconds()
}

// runGatewayBench: the bots poll the gateway, in process; the gateway's
// engine (default policy) polls the provider.
func runGatewayBench(t *testing.T, n int) benchFigures {
	f := benchFigures{Mode: "gateway", Bots: n}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{policy: engine.DefaultPolicy()})
		start := time.Now()
		bots := runBots(t, n, aliceKey, func(endpoint string, q url.Values) string {
			body, _, err := w.call(context.Background(), endpoint, q)
			require.NoError(t, err)
			return body
		})
		f.VirtualSeconds = time.Since(start).Seconds()
		measure(&f, bots, w.sim.Ledger(), func(b *benchBot) string { return w.task("alice", b.id).ProviderID })
		w.close()
	})
	return f
}

// runDirectBench: the bots poll the provider themselves.
func runDirectBench(t *testing.T, n int) benchFigures {
	f := benchFigures{Mode: "direct", Bots: n}
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Mix: providersim.NoErrors(), Key: upKey})
		hc := sim.Client()
		start := time.Now()
		bots := runBots(t, n, upKey, func(endpoint string, q url.Values) string {
			resp, err := hc.PostForm(providersim.InProcessURL+"/"+endpoint, q)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return string(b)
		})
		f.VirtualSeconds = time.Since(start).Seconds()
		measure(&f, bots, sim.Ledger(), func(b *benchBot) string { return strconv.FormatInt(b.id, 10) })
	})
	return f
}

func runBench(t *testing.T, n int) benchReport {
	return benchReport{Gateway: runGatewayBench(t, n), Direct: runDirectBench(t, n)}
}

// TestGatewayVsDirect: the same bots, polling every second, through the
// gateway and straight at the provider. Through the gateway the provider
// sees a fifth of the requests per solve or fewer (the engine's batched
// polls), every bot gets its token, and the slowest answers come at most
// the engine's poll interval and two seconds later than polling directly.
// CAPTCHAFSM_GATEWAY_BENCH=N runs N bots (BenchmarkGatewayVsDirect: 1,000).
func TestGatewayVsDirect(t *testing.T) {
	n := benchTestSize
	if v := os.Getenv(benchSizeEnv); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, benchSizeEnv)
		require.Positive(t, n, benchSizeEnv)
	}
	r := runBench(t, n)
	t.Logf("\n%s", r.table())
	b, err := json.Marshal(r)
	require.NoError(t, err)
	t.Logf("%s%s", benchJSONPrefix, b)

	assert.Equal(t, n, r.Gateway.Solved)
	assert.Equal(t, n, r.Direct.Solved)
	assert.Zero(t, r.Gateway.Bans)
	assert.Less(t, r.Gateway.perSolve(), 0.2*r.Direct.perSolve(), "upstream requests per solve")
	// The price: an answer waits for the engine's next poll (every
	// poll_interval, a batch window early) and the bot's next second.
	slack := (engine.DefaultPolicy().PollInterval + 2*time.Second).Seconds()
	assert.Less(t, r.Gateway.AnswerP99, r.Direct.AnswerP99+slack, "time to the answer through the gateway")
}

// BenchmarkGatewayVsDirect reports TestGatewayVsDirect's figures for
// 1,000 bots. synctest.Test takes a *testing.T only, so each iteration
// runs the test in a child process (this test binary) and reads the
// figures it prints.
//
//	go test -run '^$' -bench '^BenchmarkGatewayVsDirect$' ./internal/gateway
func BenchmarkGatewayVsDirect(b *testing.B) {
	var r benchReport
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGatewayVsDirect$", "-test.v", "-test.count=1", "-test.timeout=10m")
		cmd.Env = append(os.Environ(), benchSizeEnv+"="+strconv.Itoa(benchSize))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("bench run failed: %v\n%s", err, out.String())
		}
		found := false
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if _, js, ok := strings.Cut(sc.Text(), benchJSONPrefix); ok {
				require.NoError(b, json.Unmarshal([]byte(js), &r))
				found = true
			}
		}
		if !found {
			b.Fatalf("bench run printed no figures:\n%s", out.String())
		}
	}
	g, d := r.Gateway, r.Direct
	b.ReportMetric(g.perSolve(), "gateway_upstream_req/solve")
	b.ReportMetric(d.perSolve(), "direct_upstream_req/solve")
	b.ReportMetric(g.perSolve()/d.perSolve(), "upstream_ratio")
	b.ReportMetric(g.AnswerP50, "gateway_answer_p50_s")
	b.ReportMetric(g.AnswerP99, "gateway_answer_p99_s")
	b.ReportMetric(d.AnswerP50, "direct_answer_p50_s")
	b.ReportMetric(d.AnswerP99, "direct_answer_p99_s")
	b.ReportMetric(g.LagP50, "gateway_lag_p50_s")
	b.ReportMetric(g.LagP99, "gateway_lag_p99_s")
	b.ReportMetric(d.LagP50, "direct_lag_p50_s")
	b.ReportMetric(d.LagP99, "direct_lag_p99_s")
}

// BenchmarkResPHP is the cost of one res.php?action=get answer, in real
// time and in process: the gateway answering from memory (a task in
// flight, a solved one) beside the simulator answering its own task.
//
//	go test -run '^$' -bench '^BenchmarkResPHP$' ./internal/gateway
func BenchmarkResPHP(b *testing.B) {
	pol := engine.Policy{FirstPollDelay: 10 * time.Millisecond, FirstPollDelayToken: 10 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, PollTimeout: time.Minute}
	w := newWorld(b, opts{sim: providersim.Config{Speed: 1000, Mix: providersim.NoErrors()}, policy: pol})
	solved := mustID(b, w.in(aliceKey, turnstile("solved")...))
	_, err := w.gw.Engine().Wait(context.Background(), "gw:alice:"+strconv.FormatInt(solved, 10))
	require.NoError(b, err)
	slow := providersim.New(providersim.Config{Key: upKey, Mix: providersim.NoErrors(), NoRateRules: true,
		SolveTime: map[string]providersim.Dist{"turnstile": {Min: time.Hour, Max: time.Hour}}})
	w2 := newWorld(b, opts{sim: providersim.Config{Mix: providersim.NoErrors(),
		SolveTime: map[string]providersim.Dist{"turnstile": {Min: time.Hour, Max: time.Hour}}}})
	pending := mustID(b, w2.in(aliceKey, turnstile("pending")...))

	resp, err := slow.Client().PostForm(providersim.InProcessURL+"/in.php", form(upKey, turnstile("direct")...))
	require.NoError(b, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	direct := strings.TrimPrefix(string(body), "OK|")

	for _, bc := range []struct {
		name string
		w    *world
		id   int64
	}{{"gateway_solved", w, solved}, {"gateway_not_ready", w2, pending}} {
		b.Run(bc.name, func(b *testing.B) {
			serveLoop(b, bc.w.gw, form(aliceKey, "action", "get", "id", strconv.FormatInt(bc.id, 10)))
		})
	}
	b.Run("simulator_not_ready", func(b *testing.B) {
		serveLoop(b, slow, form(upKey, "action", "get", "id", direct))
	})
}

// serveLoop serves the same res.php request to h, b.N times.
func serveLoop(b *testing.B, h http.Handler, q url.Values) {
	body := q.Encode()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "http://bench.test/res.php", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || strings.HasPrefix(rec.Body.String(), "ERROR") {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
}
