package providersim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
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

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// raw sends one request with a body of its own type, in process.
func (h *harness) raw(method, path, query, ctype, body string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	u := providersim.InProcessURL + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(h.t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.c.Do(req)
	require.NoError(h.t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, string(b)
}

// TestJSONBodies: the official client's JSON body and the community
// client's text/plain JSON body are read as the provider reads them (issue
// 12 point 1: they got ERROR_WRONG_USER_KEY and ERROR_ZERO_CAPTCHA_FILESIZE).
func TestJSONBodies(t *testing.T) {
	h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
	img := base64.StdEncoding.EncodeToString(png(400))

	// @2captcha/captcha-solver's imageCaptcha: everything in a JSON body.
	body, _ := json.Marshal(map[string]any{"key": testKey, "json": 1, "header_acao": 1, "soft_id": 4587, "method": "base64", "body": img})
	_, got := h.raw(http.MethodPost, "/in.php", "", "application/json", string(body))
	a := decode(t, got)
	assert.Equal(t, 1, a.Status, got)
	mustInt(t, a.Request)

	// 2captcha's imageCaptcha: key and method in the query, {"body": ...}
	// as text/plain (node-fetch's type for a string body).
	q := url.Values{"key": {testKey}, "json": {"1"}, "header_acao": {"1"}, "soft_id": {"3316"}, "method": {"base64"}}
	body, _ = json.Marshal(map[string]string{"body": base64.StdEncoding.EncodeToString(png(401))})
	_, got = h.raw(http.MethodPost, "/in.php", q.Encode(), "text/plain;charset=UTF-8", string(body))
	a = decode(t, got)
	assert.Equal(t, 1, a.Status, got)

	// A JSON poll and balance.
	body, _ = json.Marshal(map[string]any{"key": testKey, "action": "getbalance"})
	_, got = h.raw(http.MethodPost, "/res.php", "", "application/json", string(body))
	assert.Equal(t, "99.999", got)
	assert.Equal(t, 2, h.sim.Ledger().Charged())
}

// TestCORS: header_acao=1 sets Access-Control-Allow-Origin, and a preflight
// gets the CORS headers, on a real listener (issue 12 point 2).
func TestCORS(t *testing.T) {
	s, err := providersim.Start(providersim.Config{Mix: providersim.NoErrors()}, "")
	require.NoError(t, err)
	defer s.Close()
	req, err := http.NewRequest(http.MethodOptions, s.URL+"/in.php", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://bot.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "content-type", resp.Header.Get("Access-Control-Allow-Headers"))

	resp, err = s.Client().Get(s.URL + "/res.php?" + form("action", "getbalance", "header_acao", "1").Encode())
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	resp, err = s.Client().Get(s.URL + "/res.php?" + form("action", "getbalance").Encode())
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Zero(t, s.Sim.Ledger().Requests[providersim.KindOther], "a preflight is not an API request")
}

// TestUnknownMethodsAreNotCharged (issue 12 point 3).
func TestUnknownMethodsAreNotCharged(t *testing.T) {
	h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
	for _, m := range []string{"no_such_method", "hcapcha", "HCAPTCHA"} {
		assert.Equal(t, "ERROR_NO_SUCH_METHOD", h.in("method", m, "sitekey", "k", "pageurl", "https://e.com"), m)
	}
	_, got := h.raw(http.MethodPost, "/in.php", "", "application/x-www-form-urlencoded",
		form("method", "hcapcha", "json", "1").Encode())
	assert.Contains(t, got, "did you mean hcaptcha?")
	l := h.sim.Ledger()
	assert.Zero(t, l.Charged())
	assert.InDelta(t, 100, l.Balance, 0)
	assert.Equal(t, 4, l.Answers["ERROR_NO_SUCH_METHOD"])
}

// TestValidKeysAndIPBan: with keys given, only they exist; repeated wrong
// keys from one address earn IP_BANNED for 5 minutes, for that address
// only (issue 12 point 5).
func TestValidKeysAndIPBan(t *testing.T) {
	const other = "ffffffffffffffffffffffffffffffff"
	const second = "abcdefabcdefabcdefabcdefabcdef12"
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), Keys: []string{testKey, second}})
		bal := func(key, addr string) string {
			req, err := http.NewRequest(http.MethodGet, providersim.InProcessURL+"/res.php?"+form("action", "getbalance", "key", key).Encode(), nil)
			require.NoError(t, err)
			req.RemoteAddr = addr
			_, body, err := h.send(req)
			require.NoError(t, err)
			return body
		}
		assert.Equal(t, "100", bal(testKey, "10.0.0.1:1"))
		assert.Equal(t, "100", bal(strings.ToUpper(second), "10.0.0.1:1"))
		for i := range 19 {
			assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", bal(other, "10.0.0.1:1"), i)
		}
		assert.Equal(t, "ERROR_WRONG_USER_KEY", bal("short", "10.0.0.1:2"), "the 20th wrong key in a minute")
		assert.Equal(t, "IP_BANNED", bal(testKey, "10.0.0.1:3"), "the address is banned, whatever the key")
		assert.Equal(t, "100", bal(testKey, "10.0.0.2:1"), "other addresses are not")
		advance(5*time.Minute - time.Nanosecond)
		assert.Equal(t, "IP_BANNED", bal(testKey, "10.0.0.1:1"))
		advance(time.Nanosecond)
		assert.Equal(t, "100", bal(testKey, "10.0.0.1:1"))
		assert.Equal(t, 1, h.sim.Ledger().Bans["IP_BANNED"])

		// Wrong keys spread over more than a minute earn nothing.
		for range 40 {
			assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", bal(other, "10.0.0.3:1"))
			advance(4 * time.Second)
		}
		assert.Equal(t, 1, h.sim.Ledger().Bans["IP_BANNED"])
	})
	_, err := providersim.Start(providersim.Config{Keys: []string{"nope"}}, "")
	assert.ErrorContains(t, err, "Keys[0]: not 32 hex characters")
}

// handlerClient is an *http.Client whose requests a handler serves in
// process, so pingbacks run inside synctest bubbles.
func handlerClient(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := newRecorder()
		h.ServeHTTP(rec, r)
		return &http.Response{StatusCode: rec.code, Header: rec.header, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), Request: r}, nil
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type recorder struct {
	code   int
	header http.Header
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{code: http.StatusOK, header: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// pingbacks records the pingbacks a bot received.
type pingbacks struct {
	mu   sync.Mutex
	got  []url.Values
	at   []time.Time
	path []string
}

// seen returns a copy of what the bot received so far.
func (p *pingbacks) seen() (got []url.Values, at []time.Time, path []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.got...), append([]time.Time(nil), p.at...), append([]string(nil), p.path...)
}

func (p *pingbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, r.PostForm)
	p.at = append(p.at, time.Now())
	p.path = append(p.path, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
}

// TestPingback: registration, then a POST of id and code to the task's URL
// when it ends (issue 12 point 6).
func TestPingback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bot := &pingbacks{}
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), PingbackClient: handlerClient(bot),
			SolveTime: map[string]providersim.Dist{"hcaptcha": {Min: 20 * time.Second, Max: 20 * time.Second}}})
		defer h.sim.Close()
		cb := "http://127.0.0.1:8181/captcha/done"
		task := []string{"method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com", "pingback", cb}

		assert.Equal(t, "ERROR_IP_ADDRES", h.in(task...), "an unregistered pingback URL")
		assert.Equal(t, "ERROR_BAD_PARAMETERS", h.res("action", "add_pingback", "addr", "https://bot.example.com/cb"), "loopback only")
		assert.Equal(t, "ERROR_BAD_PARAMETERS", h.res("action", "add_pingback"))
		assert.Equal(t, "OK", h.res("action", "add_pingback", "addr", "http://127.0.0.1:8181/"))
		assert.Equal(t, "OK|http://127.0.0.1:8181/", h.res("action", "get_pingback"))
		assert.Equal(t, `{"status":1,"request":["http://127.0.0.1:8181/"]}`, h.res("action", "get_pingback", "json", "1"))

		start := time.Now()
		id := h.mustID(h.in(task...))
		require.NoError(t, h.sim.SetMix(providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 1}}))
		bad := h.mustID(h.in(append(task[:len(task)-1:len(task)-1], cb+"?task=2")...))
		advance(19 * time.Second)
		synctest.Wait()
		got, _, _ := bot.seen()
		assert.Empty(t, got, "nothing before the task ends")
		advance(time.Second)
		synctest.Wait()
		got, at, path := bot.seen()
		require.Len(t, got, 2)
		assert.Equal(t, []string{"POST /captcha/done application/x-www-form-urlencoded", "POST /captcha/done application/x-www-form-urlencoded"}, path)
		byID := map[string]string{got[0].Get("id"): got[0].Get("code"), got[1].Get("id"): got[1].Get("code")}
		assert.Equal(t, h.mustID(h.res("action", "get", "id", id)), byID[id], "the token, as a poll gives it")
		assert.Equal(t, "ERROR_CAPTCHA_UNSOLVABLE", byID[bad])
		assert.Equal(t, 20*time.Second, at[0].Sub(start))
		assert.Equal(t, 2, h.sim.Ledger().Pingbacks)

		// Close drops pingbacks not yet due.
		assert.Equal(t, "OK", h.res("action", "del_pingback", "addr", "all"))
		assert.Equal(t, "ERROR_IP_ADDRES", h.in(task...))
		assert.Equal(t, "OK", h.res("action", "add_pingback", "addr", "http://localhost:8181/"))
		h.mustID(h.in("method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com", "pingback", "http://localhost:8181/x"))
		h.sim.Close()
		advance(time.Minute)
		synctest.Wait()
		got, _, _ = bot.seen()
		assert.Len(t, got, 2)
	})
}

// TestPollTiming: with PollTiming, polls sooner than the documented
// minimums are answered ERROR_TOO_MUCH_REQUESTS and the answer waits
// (issue 12 point 7).
func TestPollTiming(t *testing.T) {
	for _, tc := range []struct {
		name   string
		speed  float64
		submit []string
		first  time.Duration
	}{
		{"image", 1, []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(png(300))}, 5 * time.Second},
		{"recaptcha", 1, []string{"method", "userrecaptcha", "googlekey", "6Le", "pageurl", "https://e.com"}, 10 * time.Second},
		{"turnstile at speed 100", 100, []string{"method", "turnstile", "sitekey", "k", "pageurl", "https://e.com"}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), PollTiming: true, Speed: tc.speed,
					SolveTime: map[string]providersim.Dist{"base64": {}, "userrecaptcha": {}, "turnstile": {}}})
				id := h.mustID(h.in(tc.submit...))
				advance(tc.first - time.Nanosecond)
				assert.Equal(t, "ERROR_TOO_MUCH_REQUESTS", h.res("action", "get", "id", id))
				var j map[string]any
				require.NoError(t, json.Unmarshal([]byte(h.res("action", "get", "id", id, "json", "1")), &j))
				assert.Contains(t, j["error_text"], "after its submit; the provider's docs ask for at least "+tc.first.String())
				advance(time.Nanosecond)
				tok := h.mustID(h.res("action", "get", "id", id))
				interval := time.Duration(float64(5*time.Second) / tc.speed)
				advance(interval - time.Nanosecond)
				assert.Equal(t, "ERROR_TOO_MUCH_REQUESTS|ERROR_TOO_MUCH_REQUESTS", h.res("action", "get", "ids", id+","+id))
				advance(time.Nanosecond)
				assert.Equal(t, tok+"|ERROR_TOO_MUCH_REQUESTS", h.res("action", "get", "ids", id+","+id), "each id of a batch keeps the rule")
				assert.Equal(t, "OK|"+tok+"|0.00"+priceOf(tc.name), h.res("action", "get2", "id", id), "get2 is not a poll loop")
				assert.Equal(t, 5, h.sim.Ledger().TooSoon)
			})
		})
	}
	// Off by default in the library.
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		id := h.recaptcha("x")
		assert.Equal(t, "CAPCHA_NOT_READY", h.res("action", "get", "id", h.mustID(id)))
		assert.Zero(t, h.sim.Ledger().TooSoon)
	})
}

func priceOf(name string) string {
	switch {
	case strings.HasPrefix(name, "image"):
		return "05"
	case strings.HasPrefix(name, "recaptcha"):
		return "299"
	}
	return "145"
}

// TestGeeTestAnswers: the fields a client splits, in both formats (issue
// 12 point 8).
func TestGeeTestAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		v3 := h.mustID(h.in("method", "geetest", "gt", "g", "challenge", "c", "pageurl", "https://e.com"))
		v4 := h.mustID(h.in("method", "geetest_v4", "captcha_id", "e392e1d7fd421dc63325744d5a2b9c73", "pageurl", "https://e.com"))
		v4ai := h.mustID(h.in("method", "geetest", "version", "4", "gt", "e392e1d7fd421dc63325744d5a2b9c73", "pageurl", "https://e.com"))
		advance(time.Minute)

		text := h.mustID(h.res("action", "get", "id", v3))
		fields := map[string]string{}
		for _, kv := range strings.Split(text, ",") {
			k, v, ok := strings.Cut(kv, ":")
			require.True(t, ok, text)
			fields[k] = v
		}
		assert.ElementsMatch(t, []string{"challenge", "validate", "seccode"}, keys(fields))
		var obj map[string]string
		var a struct {
			Status  int             `json:"status"`
			Request json.RawMessage `json:"request"`
		}
		require.NoError(t, json.Unmarshal([]byte(h.res("action", "get", "id", v3, "json", "1")), &a))
		require.NoError(t, json.Unmarshal(a.Request, &obj))
		assert.Equal(t, map[string]string{"geetest_challenge": fields["challenge"], "geetest_validate": fields["validate"], "geetest_seccode": fields["seccode"]}, obj)

		for _, id := range []string{v4, v4ai} {
			require.NoError(t, json.Unmarshal([]byte(h.res("action", "get", "id", id, "json", "1")), &a))
			obj = nil
			require.NoError(t, json.Unmarshal(a.Request, &obj))
			assert.ElementsMatch(t, []string{"captcha_id", "lot_number", "pass_token", "gen_time", "captcha_output"}, keys(obj))
			_, err := strconv.ParseInt(obj["gen_time"], 10, 64)
			assert.NoError(t, err)
		}
		// A batch gives each format's shape, and no '|' inside an answer.
		batch := h.res("action", "get", "ids", v3+","+v4)
		assert.Equal(t, 2, len(strings.Split(batch, "|")), batch)
		assert.True(t, strings.HasPrefix(batch, "challenge:"), batch)
		batchJSON := decode(t, h.res("action", "get", "ids", v3+","+v4, "json", "1")).Request
		assert.True(t, strings.HasPrefix(batchJSON, `{"geetest_challenge":`), batchJSON)
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
