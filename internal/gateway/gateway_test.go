package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/gateway"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

// TestSolveThroughGateway: a client submits, polls every second and gets
// the token the engine stored; the provider sees the engine's requests
// only, however often the clients poll.
func TestSolveThroughGateway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{sim: providersim.Config{PollTiming: true}})
		const n = 20
		ids := make([]int64, n)
		for i := range n {
			ids[i] = mustID(t, w.in(aliceKey, turnstile(fmt.Sprint("p", i))...))
		}
		var wg sync.WaitGroup
		answers := make([]string, n)
		for i := range n {
			wg.Go(func() { answers[i] = w.poll(aliceKey, ids[i]) })
		}
		wg.Wait()

		clientPolls := 0
		for i, id := range ids {
			assert.Less(t, id, int64(gateway.MaxID), "ids fit a JavaScript number")
			if i > 0 {
				assert.Greater(t, id, ids[i-1], "ids rise")
			}
			tk := w.task("alice", id)
			require.Equal(t, states.Done, tk.State)
			assert.Equal(t, "OK|"+tk.Token, answers[i], "the client gets the token the engine stored")
			assert.Equal(t, "turnstile", tk.Method)
			for k := range tk.Params {
				assert.NotContains(t, []string{"key", "json", "header_acao", "pingback", "soft_id_local"}, k, "only the task's own parameters go upstream")
			}
		}
		clientPolls = w.obs.get(func(r *recorder) map[string]int { return r.answers }, "alice/get/CAPCHA_NOT_READY") + n
		led := w.sim.Ledger()
		st := w.gw.Engine().Stats()
		assert.Equal(t, n, led.Requests[providersim.KindSubmit], "one in.php per task upstream")
		assert.Equal(t, int(st.PollRequests), led.Requests[providersim.KindPoll], "every res.php upstream is the engine's")
		assert.Zero(t, led.TooSoon, "the engine keeps the provider's poll timing")
		assert.Less(t, led.Requests[providersim.KindPoll]*5, clientPolls,
			"clients polled %d times; the provider saw %d batched polls", clientPolls, led.Requests[providersim.KindPoll])
		assert.Equal(t, n, w.obs.get(func(r *recorder) map[string]int { return r.settled }, "alice/Done"))
	})
}

// TestBadInputCreatesNothing: a task the provider would refuse gets the
// provider's code, and nothing is stored or sent.
func TestBadInputCreatesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		for _, tc := range []struct {
			kv   []string
			code string
		}{
			{[]string{"method", "hcapcha", "sitekey", "k", "pageurl", "https://a.example"}, "ERROR_NO_SUCH_METHOD"},
			{[]string{"method", "hcaptcha", "sitekey", "k"}, "ERROR_PAGEURL"},
			{[]string{"method", "hcaptcha", "sitekey", "k", "pageurl", "/relative"}, "ERROR_PAGEURL"},
			{[]string{"method", "userrecaptcha", "pageurl", "https://a.example"}, "ERROR_WRONG_GOOGLEKEY"},
			{[]string{"method", "userrecaptcha", "googlekey", "bad key!", "pageurl", "https://a.example"}, "ERROR_GOOGLEKEY"},
			{[]string{"method", "base64", "body", "aGVsbG8="}, "ERROR_ZERO_CAPTCHA_FILESIZE"},
			{[]string{"method", "hcaptcha", "sitekey", "k", "pageurl", "https://a.example", "proxytype", "FTP", "proxy", "1.2.3.4:5"}, "ERROR_BAD_PARAMETERS"},
			{[]string{"method", "hcaptcha", "sitekey", "k", "pageurl", "https://a.example", "pingback", "https://203.0.113.9/cb"}, "ERROR_IP_ADDRES"},
			{[]string{}, "ERROR_BAD_PARAMETERS"},
		} {
			assert.Equal(t, tc.code, w.in(aliceKey, tc.kv...), tc.kv)
		}
		// The engine's own validation is stricter than the provider's: its
		// refusal is answered with the provider's code too, naming the field.
		a := decode(t, w.in(aliceKey, "method", "userrecaptcha", "googlekey", "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
			"pageurl", "https://a.example", "invisible", "maybe", "json", "1"))
		assert.Equal(t, 0, a.Status)
		assert.Equal(t, `"ERROR_BAD_PARAMETERS"`, string(a.Request))
		assert.Contains(t, a.ErrorText, "invisible")
		list, err := w.store.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, list, "no bad task is stored")

		assert.Zero(t, w.sim.Ledger().Requests[providersim.KindSubmit], "no bad task is sent")

		// What the provider takes in other spellings, the gateway takes too:
		// the community client's invisible=false, a lower-case proxytype.
		id := mustID(t, w.in(aliceKey, "method", "userrecaptcha", "googlekey", "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
			"pageurl", "https://a.example", "invisible", "false", "proxy", "u:p@10.0.0.1:3128", "proxytype", "http"))
		tk := w.task("alice", id)
		assert.Equal(t, "0", tk.Params["invisible"])
		assert.Equal(t, "HTTP", tk.Params["proxytype"])
	})
}

// TestKeys: unknown keys, malformed keys and another client's ids.
func TestKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		id := mustID(t, w.in(aliceKey, turnstile("k")...))
		sid := strconv.FormatInt(id, 10)
		assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", w.in("cccccccccccccccccccccccccccccccc", turnstile("k")...))
		assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", w.res("cccccccccccccccccccccccccccccccc", "action", "get", "id", sid))
		assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", w.res(upKey, "action", "getbalance"), "the provider's key is not a local key")
		assert.Equal(t, "ERROR_WRONG_USER_KEY", w.res("short", "action", "get", "id", sid))
		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", w.res(bobKey, "action", "get", "id", sid), "bob cannot read alice's task")
		assert.Equal(t, "CAPCHA_NOT_READY", w.res(strings.ToUpper(aliceKey), "action", "get", "id", sid), "keys in any letter case")
		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", w.res(aliceKey, "action", "get", "id", "12345"))
		assert.Equal(t, "ERROR_WRONG_ID_FORMAT", w.res(aliceKey, "action", "get", "id", "abc"))
		assert.Equal(t, 1, w.obs.get(func(r *recorder) map[string]int { return r.answers }, "-/get/ERROR_KEY_DOES_NOT_EXIST"))
		assert.Zero(t, w.sim.Ledger().Requests[providersim.KindBalance], "an unknown key never reaches the provider")
	})
}

// TestAnswersFollowTheEngine: transient errors and resubmits are absorbed
// (the client sees CAPCHA_NOT_READY), final states answer their codes.
func TestAnswersFollowTheEngine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mix    providersim.Mix
		policy engine.Policy
		want   string
		state  states.State
		code   string
	}{
		{"no slot, retried", providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 0.6}, Poll: map[string]float64{}},
			engine.Policy{MaxRetries: 100}, "OK|", states.Done, ""},
		{"unsolvable, resubmitted until the limit", providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 1}},
			engine.Policy{MaxResubmits: 1}, "ERROR_CAPTCHA_UNSOLVABLE", states.Failed, "ERROR_CAPTCHA_UNSOLVABLE"},
		{"permanent", providersim.Mix{Submit: map[string]float64{"ERROR_BAD_TOKEN_OR_PAGEURL": 1}, Poll: map[string]float64{}},
			engine.Policy{}, "ERROR_BAD_TOKEN_OR_PAGEURL", states.Failed, "ERROR_BAD_TOKEN_OR_PAGEURL"},
		{"poll timeout", providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{}},
			engine.Policy{PollTimeout: 20 * time.Second}, "ERROR_CAPTCHA_UNSOLVABLE", states.Failed, "POLL_TIMEOUT"},
		{"no slot until retries run out", providersim.Mix{Submit: map[string]float64{"ERROR_NO_SLOT_AVAILABLE": 1}, Poll: map[string]float64{}},
			engine.Policy{MaxRetries: 2}, "ERROR_NO_SLOT_AVAILABLE", states.Failed, "ERROR_NO_SLOT_AVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pol := fastPolicy
				pol.MaxRetries, pol.MaxResubmits, pol.PollTimeout = tc.policy.MaxRetries, tc.policy.MaxResubmits, tc.policy.PollTimeout
				sim := providersim.Config{Mix: tc.mix, Seed: 3}
				if tc.code == "POLL_TIMEOUT" {
					sim.SolveTime = map[string]providersim.Dist{"turnstile": {Min: time.Minute, Max: time.Minute}}
				}
				w := newWorld(t, opts{sim: sim, policy: pol})
				id := mustID(t, w.in(aliceKey, turnstile("x")...))
				seen := map[string]bool{}
				var final string
				for range 300 {
					<-time.After(time.Second)
					a := w.res(aliceKey, "action", "get", "id", strconv.FormatInt(id, 10))
					seen[a] = true
					if a != "CAPCHA_NOT_READY" {
						final = a
						break
					}
				}
				assert.True(t, strings.HasPrefix(final, tc.want), "answer %q, want %q", final, tc.want)
				delete(seen, "CAPCHA_NOT_READY")
				assert.Len(t, seen, 1, "the client saw CAPCHA_NOT_READY then its answer, nothing between: %v", seen)
				tk := w.task("alice", id)
				assert.Equal(t, tc.state, tk.State)
				assert.Equal(t, tc.code, tk.Code)
				// The JSON form says why.
				a := decode(t, w.res(aliceKey, "action", "get", "id", strconv.FormatInt(id, 10), "json", "1"))
				if tc.state == states.Failed {
					assert.Equal(t, 0, a.Status)
					assert.Contains(t, a.ErrorText, tc.code)
				}
			})
		})
	}
}

// TestAccountCodeWhileParked: an empty account parks tasks; clients get
// the account's code (the breaker's code for tasks parked by another's
// error) until the account is fixed, then the token.
func TestAccountCodeWhileParked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := fastPolicy
		pol.AccountProbeInterval = -1
		w := newWorld(t, opts{policy: pol})
		w.sim.SetBalance(0)
		first := mustID(t, w.in(aliceKey, turnstile("a")...))
		assert.Equal(t, "ERROR_ZERO_BALANCE", w.poll(aliceKey, first))
		second := mustID(t, w.in(bobKey, turnstile("b")...))
		a := decode(t, w.res(bobKey, "action", "get", "id", strconv.FormatInt(second, 10), "json", "1"))
		for string(a.Request) == `"CAPCHA_NOT_READY"` {
			<-time.After(time.Second)
			a = decode(t, w.res(bobKey, "action", "get", "id", strconv.FormatInt(second, 10), "json", "1"))
		}
		assert.Equal(t, `"ERROR_ZERO_BALANCE"`, string(a.Request), "a task parked by the breaker answers the code that opened it")
		assert.Contains(t, a.ErrorText, "ERROR_ZERO_BALANCE")
		assert.Equal(t, "BREAKER_OPEN", w.task("bob", second).Code)

		w.sim.SetBalance(10)
		n, err := w.gw.Engine().AccountFixed(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		assert.True(t, strings.HasPrefix(w.poll(aliceKey, first), "OK|"), "released, then solved")
		assert.True(t, strings.HasPrefix(w.poll(bobKey, second), "OK|"))
	})
}

// TestLostAnswerGoesToTheRetry: a client that times out while its in.php
// is stuck in a slow commit, and sends the same request again, gets the
// first id; a request whose answer was delivered does not share it.
func TestLostAnswerGoesToTheRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gs *gatedStore
		w := newWorld(t, opts{store: func(s persist.Store) persist.Store {
			gs = &gatedStore{Store: s, entered: make(chan struct{}, 8), gate: make(chan struct{})}
			return gs
		}})
		q := form(aliceKey, turnstile("same")...)

		// The first try times out while the commit is held.
		ctx, cancel := context.WithCancel(context.Background())
		firstErr := make(chan error, 1)
		go func() {
			_, _, err := w.call(ctx, "in.php", q)
			firstErr <- err
		}()
		<-gs.entered
		cancel()
		require.ErrorIs(t, <-firstErr, context.Canceled)
		// The retry arrives while the first is still being committed: it
		// waits for the first's outcome rather than create a second task.
		retry := make(chan string, 1)
		go func() {
			body, _, err := w.call(context.Background(), "in.php", q)
			assert.NoError(t, err)
			retry <- body
		}()
		synctest.Wait()
		close(gs.gate)
		id := mustID(t, <-retry)
		tasks, err := w.store.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tasks, 1, "one task for the request and its retry")
		assert.Equal(t, gateway.Ref("alice", id), tasks[0].Ref)
		assert.Equal(t, 1, w.obs.get(func(r *recorder) map[string]int { return r.dedup }, "alice"))

		// The retry's answer was delivered: the same request again is a new
		// task (bots send the same sitekey and page for every login).
		again := mustID(t, w.in(aliceKey, turnstile("same")...))
		assert.NotEqual(t, id, again)
		// Two identical requests at once, both delivered: two tasks.
		var wg sync.WaitGroup
		got := make([]int64, 2)
		for i := range got {
			wg.Go(func() { got[i] = mustID(t, w.in(aliceKey, turnstile("same")...)) })
		}
		wg.Wait()
		assert.NotEqual(t, got[0], got[1])
		// Bob's identical request is his own.
		assert.NotEqual(t, id, mustID(t, w.in(bobKey, turnstile("same")...)))

		// A lost answer older than the window is not given away.
		ctx, cancel = context.WithCancel(context.Background())
		go func() { _, _, _ = w.call(ctx, "in.php", form(aliceKey, turnstile("late")...)) }()
		cancel()
		synctest.Wait()
		<-time.After(gateway.DefaultDedupWindow + time.Second)
		late := mustID(t, w.in(aliceKey, turnstile("late")...))
		tasks, err = w.store.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, tasks, 7, "1 + 1 + 2 + 1 + 2 for the late pair")
		assert.Equal(t, gateway.Ref("alice", late), tasks[len(tasks)-1].Ref)
	})
}

// TestRestartAnswersEveryID: a gateway reopened on the same database
// answers the ids the first one gave and finishes their tasks.
func TestRestartAnswersEveryID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		done := mustID(t, w.in(aliceKey, turnstile("done")...))
		token := w.poll(aliceKey, done)
		open := mustID(t, w.in(aliceKey, turnstile("open")...))
		synctest.Wait()
		w.close()

		w.open(nil)
		assert.Equal(t, token, w.res(aliceKey, "action", "get", "id", strconv.FormatInt(done, 10)), "a settled task is read from the store")
		assert.True(t, strings.HasPrefix(w.poll(aliceKey, open), "OK|"), "an unfinished task is finished by the next gateway")
		next := mustID(t, w.in(aliceKey, turnstile("next")...))
		assert.Greater(t, next, open, "ids stay above the earlier run's")
	})
}

// TestIDCollisionTakesTheNextID: an id whose ref an earlier run took (the
// clock set back) is skipped.
func TestIDCollisionTakesTheNextID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		w.close()
		// A finished task of an earlier run holds the id the clock gives
		// next (synctest's clock starts at a fixed time).
		taken := time.Now().UnixMicro()
		st, err := openStore(w)
		require.NoError(t, err)
		tk := &persist.Task{ID: persist.NewID(), Ref: gateway.Ref("alice", taken), Method: "hcaptcha",
			Params: map[string]string{"sitekey": "old", "pageurl": "https://old.example"}}
		require.NoError(t, st.Create(context.Background(), tk))
		done := tk.Clone()
		done.State, done.Code = states.Failed, "CANCELLED"
		require.NoError(t, st.Apply(context.Background(), done, &persist.Record{From: states.Submitting, To: states.Failed, Event: "cancelled", Code: "CANCELLED"}))
		require.NoError(t, st.Close())

		w.open(nil)
		id := mustID(t, w.in(aliceKey, turnstile("new")...))
		assert.Greater(t, id, taken)
		assert.Equal(t, "turnstile", w.task("alice", id).Method)
		assert.Equal(t, "hcaptcha", w.task("alice", taken).Method, "the earlier task is untouched")
	})
}

// TestBalanceReportsGet2: getbalance is asked of the provider once per
// TTL; reports go to the provider id of the task's last submit, once;
// get2 answers the price.
func TestBalanceReportsGet2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		for range 50 {
			assert.Equal(t, "100", w.res(aliceKey, "action", "getbalance"))
		}
		assert.Equal(t, 1, w.sim.Ledger().Requests[providersim.KindBalance], "50 getbalance, 1 upstream")
		<-time.After(gateway.DefaultBalanceTTL)
		w.res(bobKey, "action", "getbalance")
		assert.Equal(t, 2, w.sim.Ledger().Requests[providersim.KindBalance])

		id := mustID(t, w.in(aliceKey, turnstile("r")...))
		sid := strconv.FormatInt(id, 10)
		assert.Equal(t, "ERROR_REPORT_NOT_RECORDED", w.res(aliceKey, "action", "reportbad", "id", sid), "nothing to report yet")
		assert.Equal(t, "CAPCHA_NOT_READY", w.res(aliceKey, "action", "get2", "id", sid))
		token := strings.TrimPrefix(w.poll(aliceKey, id), "OK|")
		a := decode(t, w.res(aliceKey, "action", "get2", "id", sid, "json", "1"))
		assert.Equal(t, `"`+token+`"`, string(a.Request))
		assert.NotEmpty(t, a.Price)
		assert.Equal(t, "OK|"+token+"|"+a.Price, w.res(aliceKey, "action", "get2", "id", sid))
		assert.Equal(t, 1, w.sim.Ledger().Requests[providersim.KindGet2], "the price is asked once")

		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", w.res(bobKey, "action", "reportbad", "id", sid))
		assert.Equal(t, "OK_REPORT_RECORDED", w.res(aliceKey, "action", "reportbad", "id", sid))
		assert.Equal(t, "ERROR_DUPLICATE_REPORT", w.res(aliceKey, "action", "reportgood", "id", sid))
		led := w.sim.Ledger()
		pid, err := strconv.ParseInt(w.task("alice", id).ProviderID, 10, 64)
		require.NoError(t, err)
		for _, tr := range led.Tasks {
			if tr.ID == pid {
				assert.Equal(t, "bad", tr.Report, "the report reached the provider's task")
			}
		}
		assert.Equal(t, 1, led.Requests[providersim.KindReport])
		assert.Equal(t, 1, w.obs.get(func(r *recorder) map[string]int { return r.reports }, "alice/bad/OK"))
		assert.Contains(t, w.logs.String(), "report recorded")
	})
}

// TestFormatsAndCORS: json=1, header_acao=1 and batched polls.
func TestFormatsAndCORS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		body, hdr, err := w.call(context.Background(), "in.php", form(aliceKey, append(turnstile("j"), "json", "1", "header_acao", "1")...))
		require.NoError(t, err)
		assert.Equal(t, "*", hdr.Get("Access-Control-Allow-Origin"))
		a := decode(t, body)
		require.Equal(t, 1, a.Status)
		var sid string
		require.NoError(t, json.Unmarshal(a.Request, &sid), "ids are strings in JSON, as the provider writes them")
		id, err := strconv.ParseInt(sid, 10, 64)
		require.NoError(t, err)
		other := mustID(t, w.in(aliceKey, turnstile("k")...))
		w.poll(aliceKey, id)
		w.poll(aliceKey, other)
		batch := w.res(aliceKey, "action", "get", "ids", fmt.Sprintf("%d,%d,x,1", id, other))
		parts := strings.Split(batch, "|")
		require.Len(t, parts, 4, batch)
		assert.Equal(t, "ERROR_WRONG_ID_FORMAT", parts[2])
		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", parts[3])
		assert.Equal(t, w.task("alice", id).Token, parts[0])
	})
}

// TestGeeTestShapes: a GeeTest answer the provider gave as a JSON object
// reaches json=1 clients as that object and plain clients as CaptchaAI's
// text.
func TestGeeTestShapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		id := mustID(t, w.in(aliceKey, "method", "geetest", "gt", "f2ae6cadcf7886856696502e1d55e00c",
			"challenge", "12345678abc90123d45678ef90123a456b", "pageurl", "https://example.com"))
		plain := w.poll(aliceKey, id)
		assert.Regexp(t, `^OK\|challenge:[0-9a-f]{32},validate:[0-9a-f]{32},seccode:[0-9a-f]{32}_jordan$`, plain)
		a := decode(t, w.res(aliceKey, "action", "get", "id", strconv.FormatInt(id, 10), "json", "1"))
		var obj map[string]string
		require.NoError(t, json.Unmarshal(a.Request, &obj), string(a.Request))
		assert.Equal(t, strings.TrimPrefix(strings.Split(plain, ",")[0], "OK|challenge:"), obj["geetest_challenge"])
	})
}

// TestPingback: a task's answer is POSTed to its pingback URL when it
// ends; URLs must be on loopback or an allowed host.
func TestPingback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		got := map[string]url.Values{}
		bot := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			require.NoError(t, r.ParseForm())
			mu.Lock()
			got[r.Host+r.URL.Path] = r.PostForm
			mu.Unlock()
		})
		w := newWorld(t, opts{pingback: &http.Client{Transport: roundTripper{bot}}, hosts: []string{"bot.internal"}})
		assert.Equal(t, "OK", w.res(aliceKey, "action", "add_pingback", "addr", "http://127.0.0.1:9/cb"))
		assert.Equal(t, "ERROR_IP_ADDRES", w.res(aliceKey, "action", "add_pingback", "addr", "http://198.51.100.7/cb"))
		assert.Equal(t, "OK|http://127.0.0.1:9/cb", w.res(aliceKey, "action", "get_pingback"))
		assert.Equal(t, "OK", w.res(bobKey, "action", "get_pingback"), "each client has its own")

		ok := mustID(t, w.in(aliceKey, append(turnstile("pb"), "pingback", "http://127.0.0.1:9/cb")...))
		allowed := mustID(t, w.in(aliceKey, append(turnstile("pb2"), "pingback", "https://bot.internal/hook")...))
		token := w.poll(aliceKey, ok)
		w.poll(aliceKey, allowed)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, url.Values{"id": {strconv.FormatInt(ok, 10)}, "code": {strings.TrimPrefix(token, "OK|")}}, got["127.0.0.1:9/cb"])
		assert.Equal(t, strconv.FormatInt(allowed, 10), got["bot.internal/hook"].Get("id"))
		assert.Equal(t, 2, w.obs.get(func(r *recorder) map[string]int { return r.pingbacks }, "alice/true"))
		assert.Empty(t, w.task("alice", ok).Params["pingback"], "the pingback is the gateway's, never sent upstream")
		assert.Zero(t, w.sim.Ledger().Pingbacks)
		assert.Equal(t, "OK", w.res(aliceKey, "action", "del_pingback", "addr", "all"))
		assert.Equal(t, "OK", w.res(aliceKey, "action", "get_pingback"))
	})
}

// TestPingbackAfterRestart: a task accepted before a restart gets its
// pingback from the next run (the URL is kept with the task), unless the
// operator no longer allows its host.
func TestPingbackAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		got := map[string]url.Values{}
		bot := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			require.NoError(t, r.ParseForm())
			mu.Lock()
			got[r.Host+r.URL.Path] = r.PostForm
			mu.Unlock()
		})
		w := newWorld(t, opts{pingback: &http.Client{Transport: roundTripper{bot}}, hosts: []string{"bot.internal"}})
		loop := mustID(t, w.in(aliceKey, append(turnstile("pb"), "pingback", "http://127.0.0.1:9/cb")...))
		dropped := mustID(t, w.in(aliceKey, append(turnstile("pb2"), "pingback", "https://bot.internal/hook")...))
		synctest.Wait()
		w.close()
		mu.Lock()
		require.Empty(t, got, "no task ended before the restart")
		mu.Unlock()

		w.cfg.PingbackHosts = nil
		w.open(nil)
		token := w.poll(aliceKey, loop)
		w.poll(aliceKey, dropped)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, url.Values{"id": {strconv.FormatInt(loop, 10)}, "code": {strings.TrimPrefix(token, "OK|")}}, got["127.0.0.1:9/cb"])
		assert.NotContains(t, got, "bot.internal/hook", "the host is no longer allowed")
		assert.Contains(t, w.logs.String(), "pingback not sent: its host is no longer allowed")
		assert.Equal(t, map[string]string{gateway.LabelPingback: "http://127.0.0.1:9/cb"}, w.task("alice", loop).Options.Labels)
	})
}

// TestSecretsStayPut: the provider's key is in no answer, log or stored
// task; local keys are in no log and no stored task.
func TestSecretsStayPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		var answers []string
		id := mustID(t, w.in(aliceKey, turnstile("s")...))
		answers = append(answers, w.poll(aliceKey, id), w.res(aliceKey, "action", "getbalance", "json", "1"),
			w.res(aliceKey, "action", "reportgood", "id", strconv.FormatInt(id, 10), "json", "1"),
			w.in("cccccccccccccccccccccccccccccccc", turnstile("x")...), w.res(aliceKey, "action", "nope", "json", "1"))
		w.close()
		st, err := openStore(w)
		require.NoError(t, err)
		defer st.Close()
		tasks, err := st.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		var stored []string
		for _, tk := range tasks {
			full, err := st.Get(context.Background(), tk.ID)
			require.NoError(t, err)
			b, _ := json.Marshal(full)
			stored = append(stored, string(b))
			h, err := st.History(context.Background(), tk.ID)
			require.NoError(t, err)
			b, _ = json.Marshal(h)
			stored = append(stored, string(b))
		}
		logs := w.logs.String()
		require.NotEmpty(t, logs)
		for _, s := range append(append(answers, logs), stored...) {
			for _, secret := range []string{upKey, aliceKey, bobKey} {
				assert.NotContains(t, strings.ToLower(s), secret)
			}
		}
		assert.Contains(t, logs, "client=alice", "logs name the client")
	})
}

// TestOpenRefusesBadConfig: clients are checked, errors never hold a key.
func TestOpenRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		clients []gateway.Client
		want    string
	}{
		{nil, "at least one client"},
		{[]gateway.Client{{Name: "a b", Key: aliceKey}}, "name"},
		{[]gateway.Client{{Name: "gw:x", Key: aliceKey}}, "name"},
		{[]gateway.Client{{Name: "alice", Key: "123"}}, "32 hex"},
		{[]gateway.Client{{Name: "alice", Key: aliceKey}, {Name: "alice", Key: bobKey}}, "given twice"},
		{[]gateway.Client{{Name: "alice", Key: aliceKey}, {Name: "bob", Key: strings.ToUpper(aliceKey)}}, "given twice"},
	} {
		err := gateway.CheckClients(tc.clients)
		require.Error(t, err)
		assert.True(t, errors.Is(err, gateway.ErrConfig))
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, strings.ToLower(err.Error()), aliceKey)
	}
	_, err := gateway.Open(context.Background(), gateway.Config{Clients: []gateway.Client{{Name: "a", Key: aliceKey}}})
	assert.ErrorContains(t, err, "Store is required", "no engine: the engine's own check")
}

// TestRefs: refs round-trip, and other refs are not the gateway's.
func TestRefs(t *testing.T) {
	for _, tc := range []struct {
		ref    string
		client string
		id     int64
		ok     bool
	}{
		{gateway.Ref("alice", 1700000000000001), "alice", 1700000000000001, true},
		{gateway.Ref("a.b-c_d", 7), "a.b-c_d", 7, true},
		{"gw:alice:", "", 0, false},
		{"gw::12", "", 0, false},
		{"gw:alice:-3", "", 0, false},
		{"gw:alice:0", "", 0, false},
		{"gw:al ice:3", "", 0, false},
		{"login-42", "", 0, false},
		{"gw:alice:12x", "", 0, false},
	} {
		c, id, ok := gateway.ParseRef(tc.ref)
		assert.Equal(t, tc.ok, ok, tc.ref)
		assert.Equal(t, tc.client, c, tc.ref)
		assert.Equal(t, tc.id, id, tc.ref)
	}
}

func openStore(w *world) (persist.Store, error) {
	return openBolt(w.dir)
}
