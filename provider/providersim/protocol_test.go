package providersim_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestSolveTimes(t *testing.T) {
	tests := []struct {
		name     string
		cfg      providersim.Config
		submit   func(h *harness, i int) string
		min, max time.Duration
	}{
		{"default recaptcha", providersim.Config{},
			func(h *harness, i int) string { return h.recaptcha(strconv.Itoa(i)) },
			12 * time.Second, 40 * time.Second},
		{"default image", providersim.Config{},
			func(h *harness, i int) string { return h.upload(append(png(200), byte(i))) },
			2 * time.Second, 8 * time.Second},
		{"configured", providersim.Config{SolveTime: map[string]providersim.Dist{"userrecaptcha": {Min: 10 * time.Second, Max: 11 * time.Second}}},
			func(h *harness, i int) string { return h.recaptcha(strconv.Itoa(i)) },
			10 * time.Second, 11 * time.Second},
		{"speed 10", providersim.Config{Speed: 10},
			func(h *harness, i int) string { return h.recaptcha(strconv.Itoa(i)) },
			1200 * time.Millisecond, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.cfg.Mix = providersim.NoErrors()
				h := newHarness(t, tt.cfg)
				for i := range 50 {
					h.mustID(tt.submit(h, i))
				}
				l := h.sim.Ledger()
				require.Equal(t, 50, l.Charged())
				seen := map[time.Duration]bool{}
				for _, task := range l.Tasks {
					d := task.Ready.Sub(task.Accepted)
					assert.GreaterOrEqual(t, d, tt.min)
					assert.LessOrEqual(t, d, tt.max)
					seen[d] = true
				}
				assert.Greater(t, len(seen), 40, "solve times should be spread, not fixed")
			})
		})
	}
}

func TestNotReadyThenToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		id := h.mustID(h.recaptcha("x"))
		task := h.sim.Ledger().Tasks[0]
		advance(task.Ready.Sub(time.Now()) - time.Nanosecond)
		assert.Equal(t, "CAPCHA_NOT_READY", h.res("action", "get", "id", id))
		assert.Equal(t, "CAPCHA_NOT_READY", decode(t, h.res("action", "get", "id", id, "json", "1")).Request)
		advance(time.Nanosecond)
		answer := h.res("action", "get", "id", id)
		token, ok := strings.CutPrefix(answer, "OK|")
		require.True(t, ok, answer)
		assert.True(t, strings.HasPrefix(token, "03A"), token)
		// The token can be fetched again, and JSON carries the same one.
		assert.Equal(t, answer, h.res("action", "get", "id", id))
		j := decode(t, h.res("action", "get", "id", id, "json", "1"))
		assert.Equal(t, jsonAnswer{Status: 1, Request: token}, j)
		assert.Equal(t, 5, h.sim.Ledger().Polls[mustInt(t, id)])
	})
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int64(c-'0')
	}
	return n
}

func TestBatchAnswersInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{
			Mix: providersim.NoErrors(),
			SolveTime: map[string]providersim.Dist{
				"userrecaptcha": {Min: 30 * time.Second, Max: 30 * time.Second},
				"hcaptcha":      {Min: 5 * time.Second, Max: 5 * time.Second},
				"turnstile":     {Min: 5 * time.Second, Max: 5 * time.Second},
			},
		})
		slow := h.mustID(h.recaptcha("slow"))
		solved := h.mustID(h.in("method", "hcaptcha", "sitekey", "abc", "pageurl", "https://example.com"))
		require.NoError(t, h.sim.SetMix(providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 1}}))
		unsolvable := h.mustID(h.in("method", "turnstile", "sitekey", "abc", "pageurl", "https://example.com"))
		advance(10 * time.Second)

		token := h.mustID(h.res("action", "get", "id", solved))
		ids := strings.Join([]string{slow, solved, unsolvable, "12x", "99"}, ",")
		want := "CAPCHA_NOT_READY|" + token + "|ERROR_CAPTCHA_UNSOLVABLE|ERROR_WRONG_ID_FORMAT|ERROR_WRONG_CAPTCHA_ID"
		assert.Equal(t, want, h.res("action", "get", "ids", ids))
		assert.Equal(t, jsonAnswer{Status: 1, Request: want}, decode(t, h.res("action", "get", "ids", ids, "json", "1")))

		// The single-id answers agree with the batch's.
		assert.Equal(t, "ERROR_CAPTCHA_UNSOLVABLE", h.res("action", "get", "id", unsolvable))
		assert.Equal(t, jsonAnswer{Status: 0, Request: "ERROR_CAPTCHA_UNSOLVABLE"}, decode(t, h.res("action", "get", "id", unsolvable, "json", "1")))

		l := h.sim.Ledger()
		assert.Equal(t, 5, l.Requests[providersim.KindPoll])
		assert.Equal(t, 1+5+5+1+1, l.Requests[providersim.KindPollIDs])
		assert.Equal(t, map[int64]int{mustInt(t, slow): 2, mustInt(t, solved): 3, mustInt(t, unsolvable): 4}, l.Polls)
		assert.Equal(t, "ERROR_CAPTCHA_UNSOLVABLE", l.Tasks[2].Outcome)
	})
}

func TestGet2Cost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), Costs: map[string]float64{"hcaptcha": 0.0042}})
		rc := h.mustID(h.recaptcha("a"))
		hc := h.mustID(h.in("method", "hcaptcha", "sitekey", "abc", "pageurl", "https://example.com"))
		assert.Equal(t, "CAPCHA_NOT_READY", h.res("action", "get2", "id", rc))
		advance(41 * time.Second)
		tok := h.mustID(h.res("action", "get", "id", rc))
		assert.Equal(t, "OK|"+tok+"|0.00299", h.res("action", "get2", "id", rc))
		assert.Equal(t, jsonAnswer{Status: 1, Request: tok, Price: "0.00299"}, decode(t, h.res("action", "get2", "id", rc, "json", "1")))
		hcTok := h.mustID(h.res("action", "get", "id", hc))
		assert.Equal(t, "OK|"+hcTok+"|0.0042", h.res("action", "get2", "id", hc))
		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", h.res("action", "get2", "id", "5"))
		assert.Equal(t, 5, h.sim.Ledger().Requests[providersim.KindGet2])
	})
}

func TestBalance(t *testing.T) {
	h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), Balance: 0.0012})
	assert.Equal(t, "0.0012", h.res("action", "getbalance"))
	h.mustID(h.upload(png(150)))
	h.mustID(h.upload(png(151)))
	assert.Equal(t, "0.0002", h.res("action", "getbalance"))
	assert.Equal(t, jsonAnswer{Status: 1, Request: "0.0002"}, decode(t, h.res("action", "getbalance", "json", "1")))
	assert.Equal(t, "ERROR_ZERO_BALANCE", h.upload(png(152)))
	assert.Equal(t, "ERROR_ZERO_BALANCE", h.recaptcha("x"))

	h.sim.SetBalance(1)
	h.mustID(h.recaptcha("x"))
	assert.InDelta(t, 1-0.00299, h.sim.Balance(), 1e-12)

	l := h.sim.Ledger()
	assert.Equal(t, 3, l.Charged())
	assert.InDelta(t, 0.0005*2+0.00299, l.Cost, 1e-12)
	assert.Equal(t, 2, l.Answers["ERROR_ZERO_BALANCE"])

	// The zero value starts at 100, and charges stay exact.
	h = newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
	for i := range 10 {
		h.mustID(h.recaptcha(strconv.Itoa(i)))
	}
	assert.Equal(t, "99.9701", h.res("action", "getbalance"))
}

func TestReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
		id := h.mustID(h.upload(png(150)))
		assert.Equal(t, "ERROR_REPORT_NOT_RECORDED", h.res("action", "reportgood", "id", id))
		advance(8 * time.Second)
		assert.Equal(t, "OK_REPORT_RECORDED", h.res("action", "reportbad", "id", id))
		assert.Equal(t, "ERROR_DUPLICATE_REPORT", h.res("action", "reportgood", "id", id))
		assert.Equal(t, jsonAnswer{Status: 0, Request: "ERROR_DUPLICATE_REPORT"}, decode(t, h.res("action", "reportbad", "id", id, "json", "1")))
		assert.Equal(t, "ERROR_WRONG_CAPTCHA_ID", h.res("action", "reportgood", "id", "1"))
		assert.Equal(t, "ERROR_WRONG_ID_FORMAT", h.res("action", "reportgood", "id", "abc"))
		l := h.sim.Ledger()
		assert.Equal(t, "bad", l.Tasks[0].Report)
		assert.Equal(t, 6, l.Requests[providersim.KindReport])
		assert.Equal(t, []int64{mustInt(t, id)}, l.Orphaned(), "reports are not polls")
	})
}

func TestTokenTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), TokenTTL: 10 * time.Minute, Speed: 2,
			SolveTime: map[string]providersim.Dist{"post": {Min: 4 * time.Second, Max: 4 * time.Second}}})
		id := h.mustID(h.upload(png(150)))
		advance(2*time.Second + 5*time.Minute - time.Nanosecond)
		h.mustID(h.res("action", "get", "id", id))
		advance(time.Nanosecond)
		assert.Equal(t, "ERROR_TOKEN_EXPIRED", h.res("action", "get", "id", id))
	})
}

func TestValidation(t *testing.T) {
	img := png(500)
	b64 := base64.StdEncoding.EncodeToString(img)
	page := "https://example.com/login"
	tests := []struct {
		name string
		kv   []string
		want string // "" means accepted
	}{
		{"base64 ok", []string{"method", "base64", "body", b64}, ""},
		{"base64 data url", []string{"method", "base64", "body", "data:image/png;base64," + b64}, ""},
		{"base64 empty", []string{"method", "base64"}, "ERROR_ZERO_CAPTCHA_FILESIZE"},
		{"base64 garbage", []string{"method", "base64", "body", "!!!not base64!!!"}, "ERROR_UPLOAD"},
		{"base64 small", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(png(99))}, "ERROR_ZERO_CAPTCHA_FILESIZE"},
		{"base64 big", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(png(100*1024 + 1))}, "ERROR_TOO_BIG_CAPTCHA_FILESIZE"},
		{"base64 exactly 100 kB", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(png(100 * 1024))}, ""},
		{"base64 bmp", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(append([]byte("BM"), make([]byte, 200)...))}, "ERROR_IMAGE_TYPE_NOT_SUPPORTED"},
		{"base64 jpeg", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(append([]byte("\xff\xd8\xff\xe0"), make([]byte, 200)...))}, ""},
		{"base64 gif", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(append([]byte("GIF89a"), make([]byte, 200)...))}, ""},
		{"no method", []string{}, "ERROR_BAD_PARAMETERS"},
		// Issue 12 point 3: a method the provider does not have is refused
		// and never charged.
		{"odd method name", []string{"method", "no such!"}, "ERROR_NO_SUCH_METHOD"},
		{"unknown method", []string{"method", "no_such_method"}, "ERROR_NO_SUCH_METHOD"},
		{"misspelt method", []string{"method", "hcapcha", "sitekey", "abc", "pageurl", page}, "ERROR_NO_SUCH_METHOD"},
		{"other method", []string{"method", "amazon_waf", "sitekey", "x", "iv", "i", "context", "c", "pageurl", page}, ""},
		{"other method missing a parameter", []string{"method", "amazon_waf", "sitekey", "x", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
		{"recaptcha ok", []string{"method", "userrecaptcha", "googlekey", "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI", "pageurl", page}, ""},
		{"recaptcha no googlekey", []string{"method", "userrecaptcha", "pageurl", page}, "ERROR_WRONG_GOOGLEKEY"},
		{"recaptcha bad googlekey", []string{"method", "userrecaptcha", "googlekey", "6Le key", "pageurl", page}, "ERROR_GOOGLEKEY"},
		{"recaptcha no pageurl", []string{"method", "userrecaptcha", "googlekey", "6Le"}, "ERROR_PAGEURL"},
		{"recaptcha relative pageurl", []string{"method", "userrecaptcha", "googlekey", "6Le", "pageurl", "/login"}, "ERROR_PAGEURL"},
		{"recaptcha ftp pageurl", []string{"method", "userrecaptcha", "googlekey", "6Le", "pageurl", "ftp://example.com"}, "ERROR_PAGEURL"},
		{"hcaptcha ok", []string{"method", "hcaptcha", "sitekey", "abc", "pageurl", page}, ""},
		{"hcaptcha no sitekey", []string{"method", "hcaptcha", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
		{"hcaptcha no pageurl", []string{"method", "hcaptcha", "sitekey", "abc"}, "ERROR_PAGEURL"},
		{"turnstile no sitekey", []string{"method", "turnstile", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
		{"funcaptcha ok", []string{"method", "funcaptcha", "publickey", "abc", "pageurl", page}, ""},
		{"funcaptcha no publickey", []string{"method", "funcaptcha", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
		{"geetest ok", []string{"method", "geetest", "gt", "g", "challenge", "c", "pageurl", page}, ""},
		{"geetest no challenge", []string{"method", "geetest", "gt", "g", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
		{"geetest_v4 ok", []string{"method", "geetest_v4", "captcha_id", "e392e1d7fd421dc63325744d5a2b9c73", "pageurl", page}, ""},
		{"geetest_v4 bad captcha_id", []string{"method", "geetest_v4", "captcha_id", "c", "pageurl", page}, "ERROR_CAPTCHA_ID"},
		{"geetest_v4 no captcha_id", []string{"method", "geetest_v4", "pageurl", page}, "ERROR_BAD_PARAMETERS"},
	}
	h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), NoRateRules: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.in(tt.kv...)
			if tt.want == "" {
				h.mustID(got)
			} else {
				assert.Equal(t, tt.want, got)
				assert.True(t, transitions.IsCode(got))
			}
			j := decode(t, h.in(append(tt.kv, "json", "1")...))
			if tt.want == "" {
				assert.Equal(t, 1, j.Status)
				mustInt(t, j.Request)
			} else {
				assert.Equal(t, jsonAnswer{Status: 0, Request: tt.want}, j)
			}
		})
	}

	t.Run("multipart", func(t *testing.T) {
		h.mustID(h.upload(png(100)))
		assert.Equal(t, "ERROR_ZERO_CAPTCHA_FILESIZE", h.upload(png(99)))
		assert.Equal(t, "ERROR_TOO_BIG_CAPTCHA_FILESIZE", h.upload(png(100*1024+1)))
		assert.Equal(t, "ERROR_TOO_BIG_CAPTCHA_FILESIZE", h.upload(png(2<<20)))
		assert.Equal(t, "ERROR_IMAGE_TYPE_NOT_SUPPORTED", h.upload([]byte(strings.Repeat("hello ", 40))))
		assert.Equal(t, "ERROR_ZERO_CAPTCHA_FILESIZE", h.in("method", "post"))
	})
}

func TestKeys(t *testing.T) {
	const other = "ffffffffffffffffffffffffffffffff"
	tests := []struct {
		name, cfgKey, key, want string
	}{
		{"any well-formed key", "", other, ""},
		{"short key", "", "abc", "ERROR_WRONG_USER_KEY"},
		{"not hex", "", strings.Repeat("z", 32), "ERROR_WRONG_USER_KEY"},
		{"empty", "", "", "ERROR_WRONG_USER_KEY"},
		{"configured key", testKey, testKey, ""},
		{"configured key, upper case", testKey, strings.ToUpper(testKey), ""},
		{"another key", testKey, other, "ERROR_KEY_DOES_NOT_EXIST"},
		{"another malformed key", testKey, "abc", "ERROR_WRONG_USER_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, providersim.Config{Mix: providersim.NoErrors(), Key: tt.cfgKey})
			q := form("method", "hcaptcha", "sitekey", "abc", "pageurl", "https://example.com")
			q.Set("key", tt.key)
			_, sub := h.post("/in.php", q)
			_, bal := h.post("/res.php", form("action", "getbalance", "key", tt.key))
			if tt.want == "" {
				h.mustID(sub)
				assert.Equal(t, "99.99701", bal)
			} else {
				assert.Equal(t, tt.want, sub)
				assert.Equal(t, tt.want, bal)
				assert.Zero(t, h.sim.Ledger().Charged())
			}
		})
	}
}

func TestResErrors(t *testing.T) {
	h := newHarness(t, providersim.Config{Mix: providersim.NoErrors()})
	h.mustID(h.recaptcha("a"))
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"missing action", []string{"id", "70000000001"}, "ERROR_EMPTY_ACTION"},
		{"unknown action", []string{"action", "dance"}, "ERROR_EMPTY_ACTION"},
		{"missing id", []string{"action", "get"}, "ERROR_WRONG_ID_FORMAT"},
		{"bad id", []string{"action", "get", "id", "12ab"}, "ERROR_WRONG_ID_FORMAT"},
		{"negative id", []string{"action", "get", "id", "-1"}, "ERROR_WRONG_ID_FORMAT"},
		{"unknown id", []string{"action", "get", "id", "70000000002"}, "ERROR_WRONG_CAPTCHA_ID"},
		{"huge id", []string{"action", "get", "id", "99999999999999999999999"}, "ERROR_WRONG_ID_FORMAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, h.res(tt.kv...))
			assert.Equal(t, jsonAnswer{Status: 0, Request: tt.want}, decode(t, h.res(append(tt.kv, "json", "1")...)))
		})
	}
	status, body := h.post("/nothing.php", form())
	assert.Equal(t, http.StatusNotFound, status, body)
	// GET works as POST does, and a path prefix is fine.
	req, err := http.NewRequest(http.MethodGet, providersim.InProcessURL+"/api/res.php?action=getbalance&key="+testKey, nil)
	require.NoError(t, err)
	status, body, err = h.send(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "99.99701", body)
	l := h.sim.Ledger()
	assert.Equal(t, 4, l.Requests[providersim.KindOther])
	assert.Equal(t, 10, l.Requests[providersim.KindPoll])
	assert.Equal(t, 1, l.Requests[providersim.KindBalance])
}

func TestTokens(t *testing.T) {
	methods := [][]string{
		{"method", "userrecaptcha", "googlekey", "k", "pageurl", "https://e.com"},
		{"method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com"},
		{"method", "turnstile", "sitekey", "k", "pageurl", "https://e.com"},
		{"method", "funcaptcha", "publickey", "k", "pageurl", "https://e.com"},
		{"method", "geetest", "gt", "k", "challenge", "c", "pageurl", "https://e.com"},
		{"method", "geetest_v4", "captcha_id", "e392e1d7fd421dc63325744d5a2b9c73", "pageurl", "https://e.com"},
		{"method", "base64", "body", base64.StdEncoding.EncodeToString(png(300))},
		{"method", "capy", "captchakey", "k", "pageurl", "https://e.com"},
	}
	run := func(seed int64) []string {
		var out []string
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, providersim.Config{Seed: seed, Mix: providersim.NoErrors(), NoRateRules: true})
			var ids []string
			for i := range 400 {
				ids = append(ids, h.mustID(h.in(methods[i%len(methods)]...)))
			}
			advance(time.Minute)
			for _, id := range ids {
				out = append(out, h.mustID(h.res("action", "get", "id", id)))
			}
		})
		return out
	}
	a, b, c := run(7), run(7), run(8)
	assert.Equal(t, a, b, "same seed, same tokens")
	seen := map[string]bool{}
	for i, tok := range a {
		assert.False(t, transitions.IsCode(tok), tok)
		assert.NotContains(t, tok, "|")
		assert.NotEmpty(t, tok)
		assert.NotEqual(t, tok, c[i], "another seed, other tokens")
		if i%len(methods) != 6 { // image answers are short and may repeat
			assert.False(t, seen[tok], "token %q repeated", tok)
		}
		seen[tok] = true
	}
}
