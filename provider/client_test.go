package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestSubmitSendsForm(t *testing.T) {
	f, c := newFake(t, answer(`{"status":1,"request":"2122988149"}`), func(c *provider.Config) { c.SoftID = "777" })
	req := with(recaptcha(), "invisible", "1")
	id, err := c.Submit(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "2122988149", id)

	s := f.last(t)
	assert.Equal(t, http.MethodPost, s.Method)
	assert.Equal(t, "/in.php", s.Path)
	assert.Empty(t, s.Query, "nothing may travel in in.php's query")
	assert.Equal(t, "application/x-www-form-urlencoded", s.ContentType)
	assert.Equal(t, testKey, s.Form.Get("key"))
	assert.Equal(t, "userrecaptcha", s.Form.Get("method"))
	assert.Equal(t, "1", s.Form.Get("json"))
	assert.Equal(t, "777", s.Form.Get("soft_id"))
	assert.Equal(t, req.Params["googlekey"], s.Form.Get("googlekey"))
	assert.Equal(t, req.Params["pageurl"], s.Form.Get("pageurl"))
	assert.Equal(t, "1", s.Form.Get("invisible"))

	// A task's own soft_id wins over the config's.
	_, err = c.Submit(context.Background(), with(req, "soft_id", "42"))
	require.NoError(t, err)
	assert.Equal(t, []string{"42"}, f.last(t).Form["soft_id"])
}

func TestSubmitPostIsMultipartFile(t *testing.T) {
	for _, kind := range []string{"png", "jpg", "gif"} {
		t.Run(kind, func(t *testing.T) {
			f, c := newFake(t, answer("OK|99"))
			img := image(kind, 2000)
			id, err := c.Submit(context.Background(), provider.Request{Method: "post", Params: map[string]string{"body": b64(img), "numeric": "1"}})
			require.NoError(t, err)
			assert.Equal(t, "99", id)
			s := f.last(t)
			assert.True(t, strings.HasPrefix(s.ContentType, "multipart/form-data"), s.ContentType)
			assert.Equal(t, img, s.File, "the file part must hold the decoded image")
			assert.Equal(t, "captcha."+kind, s.FileName)
			assert.Contains(t, s.FileType, "image/")
			assert.Equal(t, testKey, s.Form.Get("key"))
			assert.Equal(t, "post", s.Form.Get("method"))
			assert.Equal(t, "1", s.Form.Get("json"))
			assert.Equal(t, "1", s.Form.Get("numeric"))
			assert.Empty(t, s.Form.Get("body"), "post sends the image as a file, not as body")
		})
	}
}

func TestSubmitBase64IsFormField(t *testing.T) {
	f, c := newFake(t, answer("OK|5"))
	img := b64(image("jpg", 700))
	_, err := c.Submit(context.Background(), provider.Request{Method: "base64", Params: map[string]string{"body": img[:30] + "\r\n" + img[30:]}})
	require.NoError(t, err)
	s := f.last(t)
	assert.Equal(t, "application/x-www-form-urlencoded", s.ContentType)
	assert.Equal(t, img, s.Form.Get("body"), "line breaks are dropped")
	assert.Equal(t, "base64", s.Form.Get("method"))
	assert.Nil(t, s.File)
}

func TestSubmitAnswers(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		id      string
		code    string
		class   transitions.Class
		malform bool
		text    string // the APIError's ErrorText
	}{
		{"json ok", `{"status":1,"request":"2122988149"}`, "2122988149", "", "", false, ""},
		{"json ok string status", `{"status":"1","request":"7"}`, "7", "", "", false, ""},
		{"plain ok", "OK|2122988149", "2122988149", "", "", false, ""},
		{"plain ok newline", "OK|31\r\n", "31", "", "", false, ""},
		// Issue 12 point 11: error_text is kept, printable and redacted.
		{"json zero balance", `{"status":0,"request":"ERROR_ZERO_BALANCE","error_text":"no money"}`, "", "ERROR_ZERO_BALANCE", transitions.ClassAccount, false, "no money"},
		{"error text quoting the key", `{"status":0,"request":"ERROR_KEY_DOES_NOT_EXIST","error_text":"key ` + strings.ToUpper(testKey) + ` unknown"}`, "", "ERROR_KEY_DOES_NOT_EXIST", transitions.ClassPermanent, false, "key *** unknown"},
		{"error text quoting a proxy", `{"status":0,"request":"ERROR_BAD_PROXY","error_text":"proxy bob:secret@1.2.3.4:80 is bad"}`, "", "ERROR_BAD_PROXY", transitions.ClassPermanent, false, "proxy ***:***@1.2.3.4:80 is bad"},
		{"error text with control characters", `{"status":0,"request":"ERROR_UPLOAD","error_text":"bad\u001b[31m\nbody\u0000"}`, "", "ERROR_UPLOAD", transitions.ClassPermanent, false, "bad [31m body"},
		{"error text not a string", `{"status":0,"request":"ERROR_UPLOAD","error_text":{"a":1}}`, "", "ERROR_UPLOAD", transitions.ClassPermanent, false, ""},
		{"error text too long", `{"status":0,"request":"ERROR_UPLOAD","error_text":"` + strings.Repeat("é", 400) + `"}`, "", "ERROR_UPLOAD", transitions.ClassPermanent, false, strings.Repeat("é", 256)},
		{"plain no slot", "ERROR_NO_SLOT_AVAILABLE", "", "ERROR_NO_SLOT_AVAILABLE", transitions.ClassTransient, false, ""},
		{"plain bad params", "ERROR_BAD_PARAMETERS", "", "ERROR_BAD_PARAMETERS", transitions.ClassPermanent, false, ""},
		{"max user turn", "MAX_USER_TURN", "", "MAX_USER_TURN", transitions.ClassTransient, false, ""},
		{"ban", "ERROR: 1001", "", "ERROR: 1001", transitions.ClassTransient, false, ""},
		{"json ban", `{"status":0,"request":"ERROR: 1002"}`, "", "ERROR: 1002", transitions.ClassAccount, false, ""},
		{"unknown code kept raw", "ERROR_SOMETHING_NEW", "", "ERROR_SOMETHING_NEW", transitions.ClassUnknown, false, ""},
		{"unknown json code kept raw", `{"status":0,"request":"NEW_LIMIT_HIT"}`, "", "NEW_LIMIT_HIT", transitions.ClassUnknown, false, ""},
		{"ok without id", `{"status":1,"request":""}`, "", "", "", true, ""},
		{"ok with garbage id", `{"status":1,"request":"hello world"}`, "", "", "", true, ""},
		{"plain OK alone", "OK", "", "", "", true, ""},
		{"html", "<html><body>maintenance</body></html>", "", "", "", true, ""},
		{"words", "Service Unavailable", "", "", "", true, ""},
		{"empty", "", "", "", "", true, ""},
		{"invalid json", `{"status":1,"request":`, "", "", "", true, ""},
		{"json status 2", `{"status":2,"request":"1"}`, "", "", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, answer(tt.body))
			id, err := c.Submit(context.Background(), recaptcha())
			switch {
			case tt.id != "":
				require.NoError(t, err)
				assert.Equal(t, tt.id, id)
			case tt.code != "":
				var ae *provider.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, provider.EndpointIn, ae.Endpoint)
				assert.Equal(t, tt.code, ae.Code)
				assert.Equal(t, tt.class, ae.Class)
				assert.Equal(t, tt.text, ae.ErrorText)
				want := "provider: in.php: " + tt.code + " (" + string(tt.class) + ")"
				if tt.text != "" {
					want += ": " + tt.text
				}
				assert.Equal(t, want, err.Error())
				assert.ErrorIs(t, err, &provider.APIError{Code: tt.code})
				assert.NotErrorIs(t, err, &provider.APIError{Code: tt.code, Endpoint: provider.EndpointRes})
				noKey(t, err)
			default:
				var te *provider.TransportError
				require.ErrorAs(t, err, &te, "%v", err)
				assert.True(t, te.PossiblyCharged, "the server read the submit")
				assert.ErrorIs(t, err, provider.ErrMalformed)
				noKey(t, err)
			}
		})
	}
}

func TestPollSingle(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  provider.Answer
		code  string // whole-request *APIError
		class transitions.Class
	}{
		{"json token", `{"status":1,"request":"03AGdBq24PBCbwiDRaS_MJ7Z"}`, provider.Answer{Token: "03AGdBq24PBCbwiDRaS_MJ7Z"}, "", ""},
		{"plain token", "OK|03AGdBq24", provider.Answer{Token: "03AGdBq24"}, "", ""},
		{"plain image text", "OK|W68HP", provider.Answer{Token: "W68HP"}, "", ""},
		{"geetest object", `{"status":1,"request":{"geetest_challenge":"a","geetest_validate":"b"}}`,
			provider.Answer{Token: `{"geetest_challenge":"a","geetest_validate":"b"}`}, "", ""},
		{"json not ready", `{"status":0,"request":"CAPCHA_NOT_READY"}`, provider.Answer{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady}, "", ""},
		{"plain not ready", "CAPCHA_NOT_READY", provider.Answer{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady}, "", ""},
		// Issue 12 point 9: the spelling some compatible services use is
		// not ready, not unknown (which would fail a paid task).
		{"captcha not ready", `{"status":0,"request":"CAPTCHA_NOT_READY"}`, provider.Answer{Code: "CAPTCHA_NOT_READY", Class: transitions.ClassNotReady}, "", ""},
		{"plain image text with underscore", "OK|AB_CD", provider.Answer{Token: "AB_CD"}, "", ""},
		{"unsolvable", "ERROR_CAPTCHA_UNSOLVABLE", provider.Answer{Code: "ERROR_CAPTCHA_UNSOLVABLE", Class: transitions.ClassResubmit}, "", ""},
		{"wrong id", `{"status":0,"request":"ERROR_WRONG_CAPTCHA_ID"}`, provider.Answer{Code: "ERROR_WRONG_CAPTCHA_ID", Class: transitions.ClassPermanent}, "", ""},
		{"unknown task code", "ERROR_NEW_THING", provider.Answer{Code: "ERROR_NEW_THING", Class: transitions.ClassUnknown}, "", ""},
		{"json unknown word", `{"status":0,"request":"weird"}`, provider.Answer{Code: "weird", Class: transitions.ClassUnknown}, "", ""},
		{"wrong key", "ERROR_WRONG_USER_KEY", provider.Answer{}, "ERROR_WRONG_USER_KEY", transitions.ClassPermanent},
		{"key missing", `{"status":0,"request":"ERROR_KEY_DOES_NOT_EXIST"}`, provider.Answer{}, "ERROR_KEY_DOES_NOT_EXIST", transitions.ClassPermanent},
		{"ip banned", "ERROR_IP_NOT_ALLOWED", provider.Answer{}, "ERROR_IP_NOT_ALLOWED", transitions.ClassAccount},
		{"res ban", "ERROR: 1005", provider.Answer{}, "ERROR: 1005", transitions.ClassTransient},
		{"too many", "ERROR_TOO_MUCH_REQUESTS", provider.Answer{}, "ERROR_TOO_MUCH_REQUESTS", transitions.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, answer(tt.body))
			got, err := c.Poll(context.Background(), []string{"2122988149"})
			s := f.last(t)
			assert.Equal(t, http.MethodGet, s.Method)
			assert.Equal(t, "/res.php", s.Path)
			assert.Equal(t, "get", s.Query.Get("action"))
			assert.Equal(t, "2122988149", s.Query.Get("id"))
			assert.Empty(t, s.Query.Get("ids"))
			assert.Equal(t, testKey, s.Query.Get("key"))
			assert.Equal(t, "1", s.Query.Get("json"))
			if tt.code != "" {
				var ae *provider.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, provider.EndpointRes, ae.Endpoint)
				assert.Equal(t, tt.code, ae.Code)
				assert.Equal(t, tt.class, ae.Class)
				assert.Nil(t, got)
				noKey(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []provider.Answer{tt.want}, got)
		})
	}
}

func TestPollBatch(t *testing.T) {
	ids := []string{"101", "102", "103", "104"}
	tests := []struct {
		name    string
		body    string
		want    []provider.Answer
		code    string
		malform bool
	}{
		{"json mix", `{"status":1,"request":"tokA|CAPCHA_NOT_READY|ERROR_CAPTCHA_UNSOLVABLE|W68HP"}`, []provider.Answer{
			{Token: "tokA"},
			{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady},
			{Code: "ERROR_CAPTCHA_UNSOLVABLE", Class: transitions.ClassResubmit},
			{Token: "W68HP"},
		}, "", false},
		{"plain mix", "CAPCHA_NOT_READY|t2|ERROR_TOKEN_EXPIRED|ERROR_FRESH_CODE", []provider.Answer{
			{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady},
			{Token: "t2"},
			{Code: "ERROR_TOKEN_EXPIRED", Class: transitions.ClassResubmit},
			{Code: "ERROR_FRESH_CODE", Class: transitions.ClassUnknown},
		}, "", false},
		// Issue 12 point 10: an image answer that looks like a code is an
		// answer; only catalogue codes and the ERROR family are codes.
		{"image answers like codes", `{"status":1,"request":"AB_CD|CAPTCHA_NOT_READY|NEW_LIMIT|ERROR_NEW"}`, []provider.Answer{
			{Token: "AB_CD"},
			{Code: "CAPTCHA_NOT_READY", Class: transitions.ClassNotReady},
			{Token: "NEW_LIMIT"},
			{Code: "ERROR_NEW", Class: transitions.ClassUnknown},
		}, "", false},
		{"whole-request key error", "ERROR_WRONG_USER_KEY", nil, "ERROR_WRONG_USER_KEY", false},
		{"whole-request json", `{"status":0,"request":"ERROR_IP_NOT_ALLOWED"}`, nil, "ERROR_IP_NOT_ALLOWED", false},
		{"too few", `{"status":1,"request":"a|b|c"}`, nil, "", true},
		{"too many", "a|b|c|d|e", nil, "", true},
		{"empty part", "a||c|d", nil, "", true},
		{"single token for a batch", `{"status":1,"request":"tok"}`, nil, "", true},
		{"html", "<!DOCTYPE html><title>502</title>", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, answer(tt.body))
			got, err := c.Poll(context.Background(), ids)
			s := f.last(t)
			assert.Equal(t, "get", s.Query.Get("action"))
			assert.Equal(t, "101,102,103,104", s.Query.Get("ids"))
			assert.Empty(t, s.Query.Get("id"))
			switch {
			case tt.code != "":
				var ae *provider.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tt.code, ae.Code)
				assert.Equal(t, transitions.Classify(tt.code), ae.Class)
				assert.Nil(t, got)
			case tt.malform:
				var te *provider.TransportError
				require.ErrorAs(t, err, &te, "%v", err)
				assert.ErrorIs(t, err, provider.ErrMalformed)
				assert.False(t, te.PossiblyCharged, "a poll is never charged")
				assert.Nil(t, got)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

func TestCost(t *testing.T) {
	tests := []struct {
		name, body, token, cost, code string
		malform                       bool
	}{
		{"plain", "OK|03AGdB|0.00299", "03AGdB", "0.00299", "", false},
		{"json request", `{"status":1,"request":"03AGdB|0.001"}`, "03AGdB", "0.001", "", false},
		{"json price", `{"status":1,"request":"tok","price":"0.0025"}`, "tok", "0.0025", "", false},
		{"json numeric price", `{"status":1,"request":"tok","price":0.0025}`, "tok", "0.0025", "", false},
		{"not ready", "CAPCHA_NOT_READY", "", "", "CAPCHA_NOT_READY", false},
		{"no cost", "OK|tok", "", "", "", true},
		{"cost not a number", "OK|tok|cheap", "", "", "", true},
		{"no token", "OK||0.1", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, answer(tt.body))
			token, cost, err := c.Cost(context.Background(), "55")
			s := f.last(t)
			assert.Equal(t, "get2", s.Query.Get("action"))
			assert.Equal(t, "55", s.Query.Get("id"))
			switch {
			case tt.code != "":
				var ae *provider.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tt.code, ae.Code)
				assert.Equal(t, transitions.ClassNotReady, ae.Class)
			case tt.malform:
				assert.ErrorIs(t, err, provider.ErrMalformed)
				var te *provider.TransportError
				assert.ErrorAs(t, err, &te)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.token, token)
				assert.Equal(t, tt.cost, cost)
			}
		})
	}
}

func TestBalance(t *testing.T) {
	tests := []struct {
		name, body, want, code string
	}{
		{"plain", "4.567", "4.567", ""},
		{"json", `{"status":1,"request":"12.5"}`, "12.5", ""},
		{"json number", `{"status":1,"request":12.5}`, "12.5", ""},
		{"wrong key", "ERROR_KEY_DOES_NOT_EXIST", "", "ERROR_KEY_DOES_NOT_EXIST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, answer(tt.body))
			got, err := c.Balance(context.Background())
			assert.Equal(t, "getbalance", f.last(t).Query.Get("action"))
			if tt.code != "" {
				var ae *provider.APIError
				require.ErrorAs(t, err, &ae)
				assert.Equal(t, tt.code, ae.Code)
				noKey(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, c := newFake(t, answer(`{"status":1,"request":"lots"}`))
	_, err := c.Balance(context.Background())
	assert.ErrorIs(t, err, provider.ErrMalformed)
}

func TestReport(t *testing.T) {
	f, c := newFake(t, answer("OK_REPORT_RECORDED"))
	require.NoError(t, c.Report(context.Background(), "77", true))
	assert.Equal(t, "reportgood", f.last(t).Query.Get("action"))
	assert.Equal(t, "77", f.last(t).Query.Get("id"))
	require.NoError(t, c.Report(context.Background(), "78", false))
	assert.Equal(t, "reportbad", f.last(t).Query.Get("action"))

	_, c = newFake(t, answer(`{"status":1,"request":"OK_REPORT_RECORDED"}`))
	require.NoError(t, c.Report(context.Background(), "77", true))

	_, c = newFake(t, answer(`{"status":0,"request":"ERROR_DUPLICATE_REPORT"}`))
	err := c.Report(context.Background(), "77", false)
	assert.ErrorIs(t, err, &provider.APIError{Code: "ERROR_DUPLICATE_REPORT"})
	assert.Equal(t, "provider: res.php: ERROR_DUPLICATE_REPORT (permanent)", err.Error())
}

func TestBasePathIsKept(t *testing.T) {
	var paths []string
	f, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		io.WriteString(w, "OK|1")
	})
	c, err := provider.New(provider.Config{BaseURL: f.srv.URL + "/api/", Key: testKey})
	require.NoError(t, err)
	_, err = c.Submit(context.Background(), recaptcha())
	require.NoError(t, err)
	_, err = c.Poll(context.Background(), []string{"1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"/api/in.php", "/api/res.php"}, paths)
}

func TestCallerCancel(t *testing.T) {
	f, c := newFake(t, answer("OK|1"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Submit(ctx, recaptcha())
	require.ErrorIs(t, err, context.Canceled)
	var te *provider.TransportError
	require.ErrorAs(t, err, &te)
	assert.False(t, te.PossiblyCharged, "nothing was sent")
	_, err = c.Poll(ctx, []string{"1"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, f.count())
	noKey(t, err)
	assert.True(t, errors.As(err, &te))
}
