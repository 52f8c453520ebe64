package provider_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		body    string
		status  int
		request string
		bad     bool
	}{
		{`{"status":1,"request":"2122988149"}`, 1, "2122988149", false},
		{` {"status":0,"request":"ERROR_ZERO_BALANCE","error_text":"x"} ` + "\n", 0, "ERROR_ZERO_BALANCE", false},
		{`{"status":"0","request":"CAPCHA_NOT_READY"}`, 0, "CAPCHA_NOT_READY", false},
		{`{"request":"1","status":1}`, 1, "1", false},
		{`{"status":1,"request":{"a": 1, "b":"c"}}`, 1, `{"a":1,"b":"c"}`, false},
		{`{"status":1,"request":4.5}`, 1, "4.5", false},
		{`{"status":1,"request":"a|b|c"}`, 1, "a|b|c", false},
		{"\xEF\xBB\xBF{\"status\":1,\"request\":\"9\"}", 1, "9", false},
		{"OK|2122988149", 1, "2122988149", false},
		{"OK|token|0.002", 1, "token|0.002", false},
		{"OK", 1, "", false},
		{"OK_REPORT_RECORDED", 1, "OK_REPORT_RECORDED", false},
		{"CAPCHA_NOT_READY\n", 0, "CAPCHA_NOT_READY", false},
		{"ERROR_WRONG_USER_KEY", 0, "ERROR_WRONG_USER_KEY", false},
		{"ERROR: 1001", 0, "ERROR: 1001", false},
		{"MAX_USER_TURN", 0, "MAX_USER_TURN", false},
		{"IP_BANNED", 0, "IP_BANNED", false},
		{"SOME_NEW_CODE", 0, "SOME_NEW_CODE", false},
		{"tok|CAPCHA_NOT_READY", 1, "tok|CAPCHA_NOT_READY", false},
		{"CAPCHA_NOT_READY|CAPCHA_NOT_READY", 1, "CAPCHA_NOT_READY|CAPCHA_NOT_READY", false},
		{"12.345", 1, "12.345", false},
		{"", 0, "", true},
		{"   \n", 0, "", true},
		{"<html>502</html>", 0, "", true},
		{"<!DOCTYPE html>", 0, "", true},
		{"Bad Gateway", 0, "", true},
		{"FORBIDDEN", 0, "", true},
		{"W68HP", 0, "", true},
		{`{"status":1,"request":"1"`, 0, "", true},
		{`{"status":1}`, 0, "", true},
		{`{"request":"1"}`, 0, "", true},
		{`{"status":3,"request":"1"}`, 0, "", true},
		{`{"status":true,"request":"1"}`, 0, "", true},
		{`{"status":0,"request":""}`, 0, "", true},
		{`{"status":0,"request":{"a":1}}`, 0, "", true},
		{`{"status":1,"request":null}`, 0, "", true},
		{`{"status":1,"request":"1"} trailing`, 0, "", true},
		{"[1,2]", 0, "", true},
		{"OK|\x00", 0, "", true},
		{"ERROR_\xff", 0, "", true},
		{`{"status":1,"request":"a\nb"}`, 0, "", true},
		{"{\"status\":1,\"request\":{\"\xff\":1}}", 0, "", true},
	}
	for _, tt := range tests {
		status, request, err := provider.ParseAnswer([]byte(tt.body))
		if tt.bad {
			require.Error(t, err, "%q", tt.body)
			assert.ErrorIs(t, err, provider.ErrMalformed)
			continue
		}
		require.NoError(t, err, "%q", tt.body)
		assert.Equal(t, tt.status, status, "%q", tt.body)
		assert.Equal(t, tt.request, request, "%q", tt.body)
	}
}

func TestParseBatch(t *testing.T) {
	got, err := provider.ParseBatch("tok1|CAPCHA_NOT_READY| ERROR_CAPTCHA_UNSOLVABLE |ERROR_X_NEW|ABC12|ERROR: 1005", 6)
	require.NoError(t, err)
	assert.Equal(t, []provider.Answer{
		{Token: "tok1"},
		{Code: "CAPCHA_NOT_READY", Class: transitions.ClassNotReady},
		{Code: "ERROR_CAPTCHA_UNSOLVABLE", Class: transitions.ClassResubmit},
		{Code: "ERROR_X_NEW", Class: transitions.ClassUnknown},
		{Token: "ABC12"},
		{Code: "ERROR: 1005", Class: transitions.ClassTransient},
	}, got)

	got, err = provider.ParseBatch("AB_CD|CAPTCHA_NOT_READY|X_1", 3)
	require.NoError(t, err)
	assert.Equal(t, []provider.Answer{
		{Token: "AB_CD"},
		{Code: "CAPTCHA_NOT_READY", Class: transitions.ClassNotReady},
		{Token: "X_1"},
	}, got, "image answers with underscores are answers")

	got, err = provider.ParseBatch("only", 1)
	require.NoError(t, err)
	assert.Equal(t, []provider.Answer{{Token: "only"}}, got)

	for _, bad := range []struct {
		req string
		n   int
	}{
		{"a|b", 3}, {"a|b|c", 2}, {"a||c", 3}, {"", 1}, {"a", 0}, {"a", -1}, {"|", 2}, {"a|b\x00c", 2},
	} {
		_, err := provider.ParseBatch(bad.req, bad.n)
		assert.ErrorIs(t, err, provider.ErrMalformed, "%q %d", bad.req, bad.n)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"status":1,"request":"2122988149"}`, `{"status":0,"request":"ERROR_ZERO_BALANCE"}`,
		`{"status":"1","request":{"geetest_challenge":"x"}}`, `{"status":1,"request":"t","price":"0.1"}`,
		"OK|123", "OK", "OK_REPORT_RECORDED", "CAPCHA_NOT_READY", "ERROR: 1001", "a|b|CAPCHA_NOT_READY",
		"4.56", "<html></html>", "", "\xEF\xBB\xBF OK|1", `{"status":1,"request":"1"`, "NEW_CODE",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		status, request, err := provider.ParseAnswer(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "provider: malformed answer") {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			assert.ErrorIs(t, err, provider.ErrMalformed)
			assert.Zero(t, status)
			assert.Empty(t, request)
			return
		}
		if status != 0 && status != 1 {
			t.Fatalf("status %d", status)
		}
		if status == 0 {
			if request == "" || request != strings.TrimSpace(request) {
				t.Fatalf("status 0 with code %q", request)
			}
		}
		if strings.IndexFunc(request, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 || !utf8.ValidString(request) {
			t.Fatalf("request %q has control characters or invalid UTF-8", request)
		}
		// The same body parses the same way.
		s2, r2, err2 := provider.ParseAnswer(body)
		if s2 != status || r2 != request || err2 != nil {
			t.Fatalf("not deterministic")
		}
		// A plain status-1 answer survives a round trip through JSON.
		if status == 1 {
			js, _ := json.Marshal(map[string]any{"status": 1, "request": request})
			s3, r3, err3 := provider.ParseAnswer(js)
			if err3 != nil || s3 != 1 || r3 != request {
				t.Fatalf("JSON round trip of %q: %d %q %v", request, s3, r3, err3)
			}
		}
	})
}

func FuzzParseBatch(f *testing.F) {
	f.Add("tok|CAPCHA_NOT_READY|ERROR_CAPTCHA_UNSOLVABLE", 3)
	f.Add("a", 1)
	f.Add("a||b", 3)
	f.Add("", 0)
	f.Add(" ERROR: 1005 |x", 2)
	f.Fuzz(func(t *testing.T, request string, n int) {
		got, err := provider.ParseBatch(request, n)
		if err != nil {
			assert.ErrorIs(t, err, provider.ErrMalformed)
			assert.Nil(t, got)
			return
		}
		parts := strings.Split(request, "|")
		if len(got) != n || len(parts) != n {
			t.Fatalf("%d answers, %d parts, want %d", len(got), len(parts), n)
		}
		for i, a := range got {
			if (a.Token == "") == (a.Code == "") {
				t.Fatalf("answer %d has both or neither of token and code: %+v", i, a)
			}
			text := a.Token + a.Code
			if strings.IndexFunc(text, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				t.Fatalf("answer %d has control characters: %q", i, text)
			}
			if text != strings.TrimSpace(parts[i]) {
				t.Fatalf("answer %d is %q, part is %q", i, text, parts[i])
			}
			if a.Code != "" && a.Class != transitions.Classify(a.Code) {
				t.Fatalf("code %q has class %q", a.Code, a.Class)
			}
			if a.Token != "" && a.Class != "" {
				t.Fatalf("token with class %q", a.Class)
			}
		}
	})
}
