package protocol_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
	"github.com/captchafsm/captchafsm/transitions"
)

// TestCORS: header_acao=1 sets Access-Control-Allow-Origin on every answer,
// and a preflight is answered with the CORS headers (issue 12 point 2).
func TestCORS(t *testing.T) {
	f := &fake{balance: "7"}
	h := protocol.NewHandler(f, nil)

	pre := httptest.NewRequest(http.MethodOptions, "http://s/in.php", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type")
	got := do(t, h, pre)
	assert.Equal(t, http.StatusNoContent, got.status)
	assert.Equal(t, "*", got.header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, got.header.Get("Access-Control-Allow-Methods"), "POST")
	assert.Equal(t, "content-type", got.header.Get("Access-Control-Allow-Headers"))
	assert.Empty(t, got.body)
	assert.Empty(t, f.callList(), "a preflight reaches no backend")

	for _, tc := range []struct {
		name string
		req  *http.Request
		acao string
	}{
		{"query", postForm("/res.php", form("action", "getbalance", "header_acao", "1")), "*"},
		{"json body", postJSON("/res.php", "application/json", map[string]any{"key": testKey, "action": "getbalance", "header_acao": 1, "json": 1}, nil), "*"},
		{"error answer", postForm("/res.php", form("action", "nope", "header_acao", "1")), "*"},
		{"bad key", postForm("/res.php", form("action", "getbalance", "header_acao", "1", "key", "x")), "*"},
		{"off", postForm("/res.php", form("action", "getbalance")), ""},
		{"zero", postForm("/res.php", form("action", "getbalance", "header_acao", "0")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := do(t, h, tc.req)
			assert.Equal(t, http.StatusOK, got.status)
			assert.Equal(t, tc.acao, got.header.Get("Access-Control-Allow-Origin"))
		})
	}

	assert.Equal(t, http.StatusNotFound, do(t, h, postForm("/other.php", form())).status)
	got = do(t, h, httptest.NewRequest(http.MethodPut, "http://s/in.php", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, got.status)
	assert.Contains(t, got.header.Get("Allow"), "POST")
}

// TestServeOrder: Admit sees every request first; a bad body or key is
// answered before Authenticate; Authenticate's name reaches the endpoint.
func TestServeOrder(t *testing.T) {
	f := &fake{admit: &protocol.Error{Code: "IP_BANNED", Text: "5 minutes"}}
	h := protocol.NewHandler(f, nil)
	got := do(t, h, postForm("/in.php", form("method", "hcaptcha", "json", "1", "key", "bad")))
	assert.Equal(t, map[string]any{"status": 0.0, "request": "IP_BANNED", "error_text": "5 minutes"}, got.json(t))
	got = do(t, h, postForm("/in.php", form("method", "hcaptcha")))
	assert.Equal(t, "IP_BANNED", got.body, "plain answers carry no text")
	assert.Equal(t, []string{"admit", "admit"}, f.callList())

	f = &fake{}
	h = protocol.NewHandler(f, nil)
	assert.Equal(t, "ERROR_WRONG_USER_KEY", do(t, h, postForm("/in.php", form("key", "abc"))).body)
	r := postJSON("/in.php", "application/json", map[string]any{"key": testKey}, nil)
	r.Body = http.NoBody
	assert.Equal(t, "ERROR_WRONG_USER_KEY", do(t, h, r).body, "no key at all")
	bad := httptest.NewRequest(http.MethodPost, "http://s/in.php", strings.NewReader(`{"key":`))
	bad.Header.Set("Content-Type", "application/json")
	assert.Equal(t, "ERROR_UPLOAD", do(t, h, bad).body, "the body's own error comes before the key's")
	assert.Equal(t, []string{"admit", "admit", "admit"}, f.callList())

	f = &fake{auth: &protocol.Error{Code: "ERROR_KEY_DOES_NOT_EXIST"}}
	h = protocol.NewHandler(f, nil)
	assert.Equal(t, "ERROR_KEY_DOES_NOT_EXIST", do(t, h, postForm("/res.php", form("action", "getbalance"))).body)
	assert.Equal(t, []string{"admit", "auth"}, f.callList())

	f = &fake{balance: "1.5"}
	h = protocol.NewHandler(f, nil)
	assert.Equal(t, "1.5", do(t, h, postForm("/res.php", form("action", "getbalance"))).body)
	assert.Equal(t, []string{"admit", "auth", "balance"}, f.callList())
	assert.Equal(t, "alice", f.reqs[2].Client)
}

// TestCheck: in.php answers the provider's codes before the backend sees a
// task (issue 12 point 3: unknown methods are ERROR_NO_SUCH_METHOD).
func TestCheck(t *testing.T) {
	page := "https://example.com/login"
	img := base64.StdEncoding.EncodeToString(pngOf(500))
	gt4 := "e392e1d7fd421dc63325744d5a2b9c73"
	tests := []struct {
		name string
		kv   []string
		code string // "" = accepted
		text string // part of error_text
	}{
		{"no method", []string{}, "ERROR_BAD_PARAMETERS", "method is required"},
		{"unknown method", []string{"method", "no_such_method"}, "ERROR_NO_SUCH_METHOD", "not a method"},
		{"misspelt method", []string{"method", "hcapcha", "sitekey", "k", "pageurl", page}, "ERROR_NO_SUCH_METHOD", "did you mean hcaptcha?"},
		{"odd method name", []string{"method", "no such!"}, "ERROR_NO_SUCH_METHOD", ""},
		{"hcaptcha", []string{"method", "hcaptcha", "sitekey", "k", "pageurl", page}, "", ""},
		{"hcaptcha no sitekey", []string{"method", "hcaptcha", "pageurl", page}, "ERROR_BAD_PARAMETERS", "sitekey is required"},
		{"hcaptcha no pageurl", []string{"method", "hcaptcha", "sitekey", "k"}, "ERROR_PAGEURL", "pageurl"},
		{"relative pageurl", []string{"method", "turnstile", "sitekey", "k", "pageurl", "/x"}, "ERROR_PAGEURL", "absolute"},
		{"1 MB pageurl", []string{"method", "turnstile", "sitekey", "k", "pageurl", page + strings.Repeat("a", 1<<20)}, "ERROR_PAGEURL", "longer than"},
		{"recaptcha no googlekey", []string{"method", "userrecaptcha", "pageurl", page}, "ERROR_WRONG_GOOGLEKEY", "googlekey"},
		{"recaptcha bad googlekey", []string{"method", "userrecaptcha", "googlekey", "6Le key", "pageurl", page}, "ERROR_GOOGLEKEY", "googlekey"},
		{"recaptcha invisible=false", []string{"method", "userrecaptcha", "googlekey", "6Le", "pageurl", page, "invisible", "false"}, "", ""},
		{"geetest_v4", []string{"method", "geetest_v4", "captcha_id", gt4, "pageurl", page}, "", ""},
		{"geetest_v4 bad captcha_id", []string{"method", "geetest_v4", "captcha_id", "c", "pageurl", page}, "ERROR_CAPTCHA_ID", "captcha_id"},
		{"captchaai geetest v4", []string{"method", "geetest", "version", "4", "gt", gt4, "pageurl", page}, "", ""},
		{"captchaai geetest v4 bad gt", []string{"method", "geetest", "version", "4", "gt", "x", "pageurl", page}, "ERROR_CAPTCHA_ID", "gt"},
		{"geetest v3 no challenge", []string{"method", "geetest", "gt", "g", "pageurl", page}, "ERROR_BAD_PARAMETERS", "challenge"},
		{"amazon_waf no iv", []string{"method", "amazon_waf", "sitekey", "k", "context", "c", "pageurl", page}, "ERROR_BAD_PARAMETERS", "iv is required"},
		{"text question without method", []string{"textcaptcha", "If tomorrow is Saturday, what day is today?"}, "", ""},
		{"bounding_box needs instructions", []string{"method", "bounding_box", "image", img}, "ERROR_BAD_PARAMETERS", "textinstructions or imginstructions"},
		{"base64", []string{"method", "base64", "body", img}, "", ""},
		{"base64 data url", []string{"method", "base64", "body", "data:image/png;base64," + img}, "", ""},
		{"base64 empty", []string{"method", "base64"}, "ERROR_ZERO_CAPTCHA_FILESIZE", ""},
		{"base64 garbage", []string{"method", "base64", "body", "!!!"}, "ERROR_UPLOAD", ""},
		{"base64 small", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(pngOf(99))}, "ERROR_ZERO_CAPTCHA_FILESIZE", ""},
		{"base64 big", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(pngOf(100*1024 + 1))}, "ERROR_TOO_BIG_CAPTCHA_FILESIZE", ""},
		{"base64 bmp", []string{"method", "base64", "body", base64.StdEncoding.EncodeToString(append([]byte("BM"), make([]byte, 200)...))}, "ERROR_IMAGE_TYPE_NOT_SUPPORTED", ""},
		{"post without a file", []string{"method", "post"}, "ERROR_ZERO_CAPTCHA_FILESIZE", ""},
		{"bad proxytype", []string{"method", "hcaptcha", "sitekey", "k", "pageurl", page, "proxy", "1.2.3.4:80", "proxytype", "FTP"}, "ERROR_BAD_PARAMETERS", "proxytype"},
		{"relative pingback", []string{"method", "hcaptcha", "sitekey", "k", "pageurl", page, "pingback", "/cb"}, "ERROR_BAD_PARAMETERS", "pingback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{}
			h := protocol.NewHandler(f, nil)
			plain := do(t, h, postForm("/in.php", form(tt.kv...)))
			js := do(t, h, postForm("/in.php", form(append(tt.kv, "json", "1")...))).json(t)
			if tt.code == "" {
				assert.Equal(t, "OK|70000000001", plain.body)
				assert.Equal(t, map[string]any{"status": 1.0, "request": "70000000001"}, js)
				return
			}
			assert.Equal(t, tt.code, plain.body)
			assert.Equal(t, 0.0, js["status"])
			assert.Equal(t, tt.code, js["request"])
			assert.Contains(t, js["error_text"], tt.text)
			assert.NotContains(t, f.callList(), "submit")
			_, known := transitions.Lookup(tt.code)
			assert.True(t, known, "%s is a catalogue code", tt.code)
		})
	}
}

func TestSubmitTask(t *testing.T) {
	f := &fake{}
	h := protocol.NewHandler(f, nil)
	img := pngOf(300)
	// A multipart upload reaches the backend as the base64 method sends it,
	// and both shapes of the same image have one fingerprint.
	do(t, h, multipartReq(t, form("method", "post", "pingback", "http://127.0.0.1:9/cb", "soft_id", "7"), map[string][]byte{"file": img}))
	post := f.lastTask(t)
	assert.Equal(t, "post", post.Method)
	assert.Equal(t, img, post.Image)
	assert.Equal(t, base64.StdEncoding.EncodeToString(img), post.Params["body"])
	assert.Equal(t, "http://127.0.0.1:9/cb", post.Pingback)
	assert.NotContains(t, post.Params, "key")
	assert.NotContains(t, post.Params, "pingback")
	assert.NotContains(t, post.Params, "method")

	do(t, h, postForm("/in.php", form("method", "post", "body", "data:image/png;base64,"+base64.StdEncoding.EncodeToString(img), "json", "1", "header_acao", "1")))
	again := f.lastTask(t)
	assert.Equal(t, post.Fingerprint(), again.Fingerprint(), "same image, same method, other encoding and format")

	do(t, h, postForm("/in.php", form("method", "hcaptcha", "sitekey", "a", "pageurl", "https://x.test")))
	a := f.lastTask(t).Fingerprint()
	do(t, h, postForm("/in.php", form("method", "hcaptcha", "sitekey", "b", "pageurl", "https://x.test")))
	assert.NotEqual(t, a, f.lastTask(t).Fingerprint())

	f.submit = &protocol.Error{Code: "ERROR_ZERO_BALANCE"}
	assert.Equal(t, "ERROR_ZERO_BALANCE", do(t, h, postForm("/in.php", form("method", "hcaptcha", "sitekey", "b", "pageurl", "https://x.test"))).body)
	f.submit = errBoom
	got := do(t, h, postForm("/in.php", form("method", "hcaptcha", "sitekey", "b", "pageurl", "https://x.test", "json", "1")))
	assert.Equal(t, map[string]any{"status": 0.0, "request": protocol.CodeInternal}, got.json(t))
	assert.NotContains(t, got.body, "secret", "a backend's error text never reaches the client")
}

func TestResults(t *testing.T) {
	geetest := protocol.Result{Token: "challenge:c1,validate:v1,seccode:s1",
		JSON: json.RawMessage(`{"geetest_challenge":"c1","geetest_validate":"v1","geetest_seccode":"s1"}`)}
	f := &fake{results: func(ids []int64) ([]protocol.Result, error) {
		out := make([]protocol.Result, len(ids))
		for i, id := range ids {
			switch id {
			case 1:
				out[i] = protocol.Result{Token: "tok1"}
			case 2:
				out[i] = protocol.Result{Code: "CAPCHA_NOT_READY"}
			case 3:
				out[i] = geetest
			case 4:
				out[i] = protocol.Result{Code: "ERROR_TOO_MUCH_REQUESTS", Text: "polled too soon"}
			default:
				out[i] = protocol.Result{Code: "ERROR_WRONG_CAPTCHA_ID"}
			}
		}
		return out, nil
	}}
	h := protocol.NewHandler(f, nil)
	res := func(kv ...string) reply { return do(t, h, postForm("/res.php", form(kv...))) }

	assert.Equal(t, "OK|tok1", res("action", "get", "id", "1").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": "tok1"}, res("action", "get", "id", "1", "json", "1").json(t))
	assert.Equal(t, "CAPCHA_NOT_READY", res("action", "get", "id", "2").body)
	assert.Equal(t, map[string]any{"status": 0.0, "request": "ERROR_TOO_MUCH_REQUESTS", "error_text": "polled too soon"},
		res("action", "get", "id", "4", "json", "1").json(t))
	// GeeTest (issue 12 point 8): fields a client splits, in both formats.
	assert.Equal(t, "OK|challenge:c1,validate:v1,seccode:s1", res("action", "get", "id", "3").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": map[string]any{"geetest_challenge": "c1", "geetest_validate": "v1", "geetest_seccode": "s1"}},
		res("action", "get", "id", "3", "json", "1").json(t))
	for _, bad := range []string{"", "12ab", "-1", "99999999999999999999"} {
		assert.Equal(t, "ERROR_WRONG_ID_FORMAT", res("action", "get", "id", bad).body, bad)
	}

	// A batch: in order, malformed ids answered in place, the JSON form of
	// structured answers with json=1.
	assert.Equal(t, "tok1|CAPCHA_NOT_READY|ERROR_WRONG_ID_FORMAT|challenge:c1,validate:v1,seccode:s1|ERROR_WRONG_CAPTCHA_ID",
		res("action", "get", "ids", "1,2,x,3,9").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": `tok1|ERROR_WRONG_ID_FORMAT|{"geetest_challenge":"c1","geetest_validate":"v1","geetest_seccode":"s1"}`},
		res("action", "get", "ids", "1, ,3", "json", "1").json(t))
	assert.Equal(t, "ERROR_WRONG_ID_FORMAT|ERROR_WRONG_ID_FORMAT", res("action", "get", "ids", "a,b").body)

	small := protocol.NewHandler(f, &protocol.Options{MaxBatch: 2})
	assert.Equal(t, "ERROR_BAD_PARAMETERS", do(t, small, postForm("/res.php", form("action", "get", "ids", "1,2,3"))).body)

	// A backend that breaks its contract is an internal error, not a panic.
	f.results = func(ids []int64) ([]protocol.Result, error) { return nil, nil }
	assert.Equal(t, protocol.CodeInternal, res("action", "get", "ids", "1,2").body)
	f.results = func(ids []int64) ([]protocol.Result, error) { return make([]protocol.Result, len(ids)), nil }
	assert.Equal(t, protocol.CodeInternal, res("action", "get", "id", "1").body)
}

func TestOtherActions(t *testing.T) {
	f := &fake{balance: "12.5", cost: protocol.Result{Token: "tok", Price: "0.00299"}}
	h := protocol.NewHandler(f, nil)
	res := func(kv ...string) reply { return do(t, h, postForm("/res.php", form(kv...))) }

	assert.Equal(t, "12.5", res("action", "getbalance").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": "12.5"}, res("action", "getbalance", "json", "1").json(t))
	assert.Equal(t, "OK|tok|0.00299", res("action", "get2", "id", "5").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": "tok", "price": "0.00299"}, res("action", "get2", "id", "5", "json", "1").json(t))
	assert.Equal(t, "ERROR_WRONG_ID_FORMAT", res("action", "get2", "id", "x").body)
	f.cost = protocol.Result{Code: "CAPCHA_NOT_READY"}
	assert.Equal(t, "CAPCHA_NOT_READY", res("action", "get2", "id", "5").body)

	assert.Equal(t, "OK_REPORT_RECORDED", res("action", "reportgood", "id", "5").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": "OK_REPORT_RECORDED"}, res("action", "reportbad", "id", "5", "json", "1").json(t))
	assert.Equal(t, "ERROR_WRONG_ID_FORMAT", res("action", "reportbad").body)
	f.report = &protocol.Error{Code: "ERROR_DUPLICATE_REPORT"}
	assert.Equal(t, "ERROR_DUPLICATE_REPORT", res("action", "reportgood", "id", "5").body)

	// Pingback registration (issue 12 point 6).
	assert.Equal(t, "OK", res("action", "add_pingback", "addr", "http://127.0.0.1:8080/cb").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": "OK"}, res("action", "add_pingback", "addr", "http://127.0.0.1:8081/", "json", "1").json(t))
	assert.Equal(t, "OK|http://127.0.0.1:8080/cb|http://127.0.0.1:8081/", res("action", "get_pingback").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": []any{"http://127.0.0.1:8080/cb", "http://127.0.0.1:8081/"}},
		res("action", "get_pingback", "json", "1").json(t))
	assert.Equal(t, "ERROR_BAD_PARAMETERS", res("action", "add_pingback").body)
	assert.Equal(t, "ERROR_BAD_PARAMETERS", res("action", "del_pingback", "addr", "http://x.test/").body)
	assert.Equal(t, "OK", res("action", "del_pingback", "addr", "all").body)
	assert.Equal(t, map[string]any{"status": 1.0, "request": []any{}}, res("action", "get_pingback", "json", "1").json(t))

	for _, action := range []string{"", "dance", "GET"} {
		assert.Equal(t, "ERROR_EMPTY_ACTION", res("action", action).body, action)
	}
}

func TestReplyCodes(t *testing.T) {
	f := &fake{}
	h := protocol.NewHandler(f, nil)
	req, rep := h.Parse(postForm("/res.php", form("action", "get", "ids", "1,x")))
	require.Nil(t, rep)
	got := h.Serve(t.Context(), req)
	assert.Equal(t, []string{"CAPCHA_NOT_READY", "ERROR_WRONG_ID_FORMAT"}, got.Codes)
	req, _ = h.Parse(postForm("/in.php", form("method", "hcaptcha", "sitekey", "k", "pageurl", "https://x.test")))
	assert.Equal(t, []string{"OK"}, h.Serve(t.Context(), req).Codes)
	_, rep = h.Parse(postForm("/x", form()))
	require.NotNil(t, rep)
	assert.Nil(t, rep.Codes)
}

func TestErrorOf(t *testing.T) {
	assert.Nil(t, protocol.ErrorOf(nil))
	assert.Equal(t, &protocol.Error{Code: protocol.CodeInternal}, protocol.ErrorOf(errBoom), "no internal text leaks")
	for _, tc := range []struct {
		req  provider.Request
		code string
	}{
		{provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "k", "pageurl": "x"}}, "ERROR_PAGEURL"},
		{provider.Request{Method: "userrecaptcha", Params: map[string]string{"pageurl": "https://a.test"}}, "ERROR_GOOGLEKEY"},
		{provider.Request{Method: "base64", Params: map[string]string{"body": "!!"}}, "ERROR_UPLOAD"},
		{provider.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": "k", "pageurl": "https://a.test", "invisible": "false"}}, "ERROR_BAD_PARAMETERS"},
	} {
		e := protocol.ErrorOf(provider.Validate(tc.req))
		require.NotNil(t, e)
		assert.Equal(t, tc.code, e.Code)
		assert.NotEmpty(t, e.Text)
	}
}
