package provider_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{testKey, true},
		{strings.ToUpper(testKey), true},
		{"", false},
		{testKey[:31], false},
		{testKey + "0", false},
		{testKey[:31] + "g", false},
		{" " + testKey[1:], false},
		{testKey[:31] + "\n", false},
	}
	for _, tt := range tests {
		err := provider.ValidateKey(tt.key)
		if tt.ok {
			assert.NoError(t, err, "%q", tt.key)
			continue
		}
		require.Error(t, err, "%q", tt.key)
		assert.ErrorIs(t, err, provider.ErrInvalid)
		assert.Equal(t, "provider: key: must be 32 hex characters", err.Error())
	}
}

func TestNew(t *testing.T) {
	good := provider.Config{BaseURL: "https://ocr.captchaai.com", Key: testKey}
	tests := []struct {
		name  string
		mod   func(*provider.Config)
		field string
	}{
		{"defaults", func(*provider.Config) {}, ""},
		{"path base", func(c *provider.Config) { c.BaseURL = "http://127.0.0.1:8080/api/" }, ""},
		{"soft id", func(c *provider.Config) { c.SoftID = "1234" }, ""},
		{"no base", func(c *provider.Config) { c.BaseURL = "" }, "base_url"},
		{"relative base", func(c *provider.Config) { c.BaseURL = "ocr.captchaai.com" }, "base_url"},
		{"ftp base", func(c *provider.Config) { c.BaseURL = "ftp://ocr.captchaai.com" }, "base_url"},
		{"base with query", func(c *provider.Config) { c.BaseURL = "https://x.test/?key=" + testKey }, "base_url"},
		{"base with user", func(c *provider.Config) { c.BaseURL = "https://u:p@x.test" }, "base_url"},
		{"short key", func(c *provider.Config) { c.Key = testKey[:20] }, "key"},
		{"bad key", func(c *provider.Config) { c.Key = testKey[:31] + "z" }, "key"},
		{"negative timeout", func(c *provider.Config) { c.Timeout = -1 }, "timeout"},
		{"negative max body", func(c *provider.Config) { c.MaxBody = -1 }, "max_body"},
		{"bad soft id", func(c *provider.Config) { c.SoftID = "abc" }, "soft_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			c, err := provider.New(cfg)
			if tt.field == "" {
				require.NoError(t, err)
				require.NotNil(t, c)
				for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
					assert.NotContains(t, sprintf(verb, c), testKey, verb)
					assert.Contains(t, sprintf(verb, c), "in.php", verb)
				}
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, provider.ErrInvalid)
			var fe *provider.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.True(t, strings.HasPrefix(err.Error(), "provider: "+tt.field+": "), err.Error())
			noKey(t, err)
			assert.NotContains(t, err.Error(), testKey[:20])
		})
	}
}

func TestConfigHidesKey(t *testing.T) {
	cfg := provider.Config{BaseURL: "https://x.test", Key: testKey}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		s := sprintf(verb, cfg)
		assert.NotContains(t, s, testKey, verb)
		assert.Contains(t, s, "https://x.test", verb)
		s = sprintf(verb, &cfg)
		assert.NotContains(t, s, testKey, verb)
	}
}

func manyParams(n int) map[string]string {
	p := make(map[string]string, n)
	for i := range n {
		p[fmt.Sprintf("p%d", i)] = "x"
	}
	return p
}

func TestValidate(t *testing.T) {
	png := b64(image("png", 500))
	tests := []struct {
		name  string
		req   provider.Request
		field string // "" = valid
	}{
		// common
		{"empty method", provider.Request{}, "method"},
		{"upper-case method", provider.Request{Method: "UserRecaptcha"}, "method"},
		{"method with dash", provider.Request{Method: "user-recaptcha"}, "method"},
		{"unknown method passes", provider.Request{Method: "capy_v2", Params: map[string]string{"anything": "x"}}, ""},
		{"unknown method no params", provider.Request{Method: "some_new_method"}, ""},
		{"textcaptcha without its question", provider.Request{Method: "textcaptcha"}, "textcaptcha"},
		{"amazon_waf without iv", provider.Request{Method: "amazon_waf", Params: map[string]string{"sitekey": "k", "context": "c", "pageurl": "https://a.test"}}, "iv"},
		{"bounding_box without instructions", provider.Request{Method: "bounding_box", Params: map[string]string{"image": png}}, "textinstructions"},
		{"bounding_box with image instructions", provider.Request{Method: "bounding_box", Params: map[string]string{"image": png, "imginstructions": png}}, ""},
		{"captchaai geetest v4", provider.Request{Method: "geetest", Params: map[string]string{"gt": "g", "version": "4", "pageurl": "https://a.test"}}, ""},

		// sizes (issue 15: a 1 MB pageurl must not pass)
		{"1 MB pageurl", with(recaptcha(), "pageurl", "https://a.test/"+strings.Repeat("a", 1<<20)), "pageurl"},
		{"longest pageurl", with(recaptcha(), "pageurl", "https://a.test/"+strings.Repeat("a", provider.MaxURL-15)), ""},
		{"pageurl one byte too long", with(recaptcha(), "pageurl", "https://a.test/"+strings.Repeat("a", provider.MaxURL-14)), "pageurl"},
		{"long pingback", with(recaptcha(), "pingback", "https://a.test/"+strings.Repeat("a", provider.MaxURL)), "pingback"},
		{"huge user agent", with(recaptcha(), "userAgent", strings.Repeat("M", provider.MaxParamValue+1)), "userAgent"},
		{"user agent at the limit", with(recaptcha(), "userAgent", strings.Repeat("M", provider.MaxParamValue)), ""},
		{"huge html page", provider.Request{Method: "tspd", Params: map[string]string{"tspd_cookie": "c", "pageurl": "https://a.test",
			"proxy": "1.2.3.4:80", "proxytype": "HTTP", "html_page_base64": strings.Repeat("A", provider.MaxLargeValue+1)}}, "html_page_base64"},
		{"large html page", provider.Request{Method: "tspd", Params: map[string]string{"tspd_cookie": "c", "pageurl": "https://a.test",
			"proxy": "1.2.3.4:80", "proxytype": "HTTP", "html_page_base64": strings.Repeat("A", 1<<20)}}, ""},
		{"too many params", provider.Request{Method: "some_new_method", Params: manyParams(provider.MaxParams + 1)}, "params"},
		{"as many params as allowed", provider.Request{Method: "some_new_method", Params: manyParams(provider.MaxParams)}, ""},
		{"param name with a space", provider.Request{Method: "some_new_method", Params: map[string]string{"a b": "x"}}, "params"},
		{"param name too long", provider.Request{Method: "some_new_method", Params: map[string]string{strings.Repeat("n", 65): "x"}}, "params"},
		{"method name too long", provider.Request{Method: strings.Repeat("m", 65)}, "method"},
		{"key in params", with(recaptcha(), "key", testKey), "key"},
		{"method in params", with(recaptcha(), "method", "post"), "method"},
		{"json in params", with(recaptcha(), "json", "0"), "json"},
		{"empty param name", with(recaptcha(), "", "x"), "params"},
		{"soft id", with(recaptcha(), "soft_id", "123"), ""},
		{"bad soft id", with(recaptcha(), "soft_id", "12a"), "soft_id"},
		{"pingback", with(recaptcha(), "pingback", "https://me.test/cb"), ""},
		{"bad pingback", with(recaptcha(), "pingback", "me.test/cb"), "pingback"},
		{"proxy", with(recaptcha(), "proxy", "user:s3cr3tpw@1.2.3.4:8080", "proxytype", "HTTP"), ""},
		{"proxy no auth", with(recaptcha(), "proxy", "1.2.3.4:8080", "proxytype", "SOCKS5"), ""},
		{"proxy https", with(recaptcha(), "proxy", "p.test:3128", "proxytype", "HTTPS"), ""},
		{"proxy socks4", with(recaptcha(), "proxy", "p.test:1080", "proxytype", "SOCKS4"), ""},
		{"proxy without type", with(recaptcha(), "proxy", "1.2.3.4:8080"), "proxytype"},
		{"type without proxy", with(recaptcha(), "proxytype", "HTTP"), "proxy"},
		{"bad proxy type", with(recaptcha(), "proxy", "1.2.3.4:8080", "proxytype", "socks5"), "proxytype"},
		{"proxy without port", with(recaptcha(), "proxy", "1.2.3.4", "proxytype", "HTTP"), "proxy"},
		{"proxy bad port", with(recaptcha(), "proxy", "1.2.3.4:99999", "proxytype", "HTTP"), "proxy"},
		{"proxy empty login", with(recaptcha(), "proxy", "@1.2.3.4:80", "proxytype", "HTTP"), "proxy"},
		{"proxy with password bad port", with(recaptcha(), "proxy", "u:s3cr3tpw@1.2.3.4:0", "proxytype", "HTTP"), "proxy"},
		{"proxy with password bad type", with(recaptcha(), "proxy", "u:s3cr3tpw@1.2.3.4:80", "proxytype", "FTP"), "proxytype"},

		// userrecaptcha
		{"recaptcha", recaptcha(), ""},
		{"recaptcha no googlekey", with(recaptcha(), "googlekey", "\x00"), "googlekey"},
		{"recaptcha blank googlekey", with(recaptcha(), "googlekey", "  "), "googlekey"},
		{"recaptcha no pageurl", with(recaptcha(), "pageurl", "\x00"), "pageurl"},
		{"recaptcha relative pageurl", with(recaptcha(), "pageurl", "/login"), "pageurl"},
		{"recaptcha no scheme pageurl", with(recaptcha(), "pageurl", "example.com/login"), "pageurl"},
		{"recaptcha ftp pageurl", with(recaptcha(), "pageurl", "ftp://example.com/"), "pageurl"},
		{"recaptcha invisible", with(recaptcha(), "invisible", "1"), ""},
		{"recaptcha invisible bad", with(recaptcha(), "invisible", "yes"), "invisible"},
		{"recaptcha enterprise", with(recaptcha(), "enterprise", "1"), ""},
		{"recaptcha enterprise bad", with(recaptcha(), "enterprise", "2"), "enterprise"},
		{"recaptcha v2", with(recaptcha(), "version", "v2"), ""},
		{"recaptcha v4", with(recaptcha(), "version", "v4"), "version"},
		{"recaptcha v3", with(recaptcha(), "version", "v3", "action", "login", "min_score", "0.3"), ""},
		{"recaptcha v3 no action", with(recaptcha(), "version", "v3"), ""},
		{"recaptcha v3 empty action", with(recaptcha(), "version", "v3", "action", " "), "action"},
		{"recaptcha v3 score low", with(recaptcha(), "version", "v3", "min_score", "0.05"), "min_score"},
		{"recaptcha v3 score high", with(recaptcha(), "version", "v3", "min_score", "0.95"), "min_score"},
		{"recaptcha v3 score 0.1", with(recaptcha(), "version", "v3", "min_score", "0.1"), ""},
		{"recaptcha v3 score 0.9", with(recaptcha(), "version", "v3", "min_score", "0.9"), ""},
		{"recaptcha v3 score nan", with(recaptcha(), "version", "v3", "min_score", "high"), "min_score"},
		{"recaptcha v2 score", with(recaptcha(), "min_score", "0.3"), "min_score"},

		// hcaptcha, turnstile, funcaptcha, geetest, geetest_v4
		{"hcaptcha", provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "s", "pageurl": "https://a.test"}}, ""},
		{"hcaptcha no sitekey", provider.Request{Method: "hcaptcha", Params: map[string]string{"pageurl": "https://a.test"}}, "sitekey"},
		{"hcaptcha no pageurl", provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "s"}}, "pageurl"},
		{"turnstile", provider.Request{Method: "turnstile", Params: map[string]string{"sitekey": "s", "pageurl": "http://a.test"}}, ""},
		{"turnstile no sitekey", provider.Request{Method: "turnstile", Params: map[string]string{"pageurl": "https://a.test"}}, "sitekey"},
		{"turnstile bad pageurl", provider.Request{Method: "turnstile", Params: map[string]string{"sitekey": "s", "pageurl": "https://"}}, "pageurl"},
		{"funcaptcha", provider.Request{Method: "funcaptcha", Params: map[string]string{"publickey": "k", "pageurl": "https://a.test"}}, ""},
		{"funcaptcha no publickey", provider.Request{Method: "funcaptcha", Params: map[string]string{"pageurl": "https://a.test"}}, "publickey"},
		{"geetest", provider.Request{Method: "geetest", Params: map[string]string{"gt": "g", "challenge": "c", "pageurl": "https://a.test"}}, ""},
		{"geetest no gt", provider.Request{Method: "geetest", Params: map[string]string{"challenge": "c", "pageurl": "https://a.test"}}, "gt"},
		{"geetest no challenge", provider.Request{Method: "geetest", Params: map[string]string{"gt": "g", "pageurl": "https://a.test"}}, "challenge"},
		{"geetest_v4", provider.Request{Method: "geetest_v4", Params: map[string]string{"captcha_id": "c", "pageurl": "https://a.test"}}, ""},
		{"geetest_v4 no captcha_id", provider.Request{Method: "geetest_v4", Params: map[string]string{"pageurl": "https://a.test"}}, "captcha_id"},
		{"unknown method bad pageurl", provider.Request{Method: "capy", Params: map[string]string{"pageurl": "x"}}, "pageurl"},

		// images
		{"post png", provider.Request{Method: "post", Params: map[string]string{"body": png}}, ""},
		{"base64 png", provider.Request{Method: "base64", Params: map[string]string{"body": png}}, ""},
		{"base64 jpeg", provider.Request{Method: "base64", Params: map[string]string{"body": b64(image("jpg", 1000))}}, ""},
		{"base64 gif", provider.Request{Method: "base64", Params: map[string]string{"body": b64(image("gif", 1000))}}, ""},
		{"base64 wrapped lines", provider.Request{Method: "base64", Params: map[string]string{"body": png[:40] + "\n" + png[40:]}}, ""},
		{"base64 extra params", provider.Request{Method: "base64", Params: map[string]string{"body": png, "numeric": "1", "phrase": "0"}}, ""},
		{"post no body", provider.Request{Method: "post"}, "body"},
		{"base64 empty body", provider.Request{Method: "base64", Params: map[string]string{"body": ""}}, "body"},
		{"base64 not base64", provider.Request{Method: "base64", Params: map[string]string{"body": "%%%not base64%%%"}}, "body"},
		{"base64 data uri", provider.Request{Method: "base64", Params: map[string]string{"body": "data:image/png;base64," + png}}, "body"},
		{"base64 bmp", provider.Request{Method: "base64", Params: map[string]string{"body": b64(image("bmp", 500))}}, "body"},
		{"base64 no magic", provider.Request{Method: "base64", Params: map[string]string{"body": b64(image("none", 500))}}, "body"},
		{"post 99 bytes", provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", provider.MinImageSize-1))}}, "body"},
		{"post 100 bytes", provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", provider.MinImageSize))}}, ""},
		{"post max bytes", provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", provider.MaxImageSize))}}, ""},
		{"post max+1 bytes", provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", provider.MaxImageSize+1))}}, "body"},
		{"post huge", provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", 10*provider.MaxImageSize))}}, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := provider.Validate(tt.req)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, provider.ErrInvalid)
			var fe *provider.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field, err.Error())
			assert.NotEmpty(t, fe.Problem)
			noKey(t, err)
			assert.NotContains(t, err.Error(), "s3cr3tpw", "a proxy password leaked")
			assert.Less(t, len(err.Error()), 200, "an error never repeats a long value")
		})
	}
}

// TestSubmitInvalidSendsNothing: a request Validate refuses never reaches the
// server, whatever the method.
func TestSubmitInvalidSendsNothing(t *testing.T) {
	f, c := newFake(t, answer(`{"status":1,"request":"1"}`))
	bad := []provider.Request{
		{},
		{Method: "Bad Method"},
		with(recaptcha(), "pageurl", "\x00"),
		with(recaptcha(), "googlekey", "\x00"),
		with(recaptcha(), "version", "v3", "min_score", "1.5"),
		with(recaptcha(), "proxy", "u:p@1.2.3.4:1"),
		with(recaptcha(), "key", testKey),
		{Method: "hcaptcha", Params: map[string]string{"pageurl": "https://a.test"}},
		{Method: "turnstile", Params: map[string]string{"sitekey": "s"}},
		{Method: "funcaptcha", Params: map[string]string{"pageurl": "https://a.test"}},
		{Method: "geetest", Params: map[string]string{"gt": "g", "pageurl": "https://a.test"}},
		{Method: "geetest_v4", Params: map[string]string{"pageurl": "https://a.test"}},
		{Method: "post", Params: map[string]string{"body": b64(image("png", 50))}},
		{Method: "base64", Params: map[string]string{"body": b64(image("bmp", 500))}},
	}
	for _, req := range bad {
		id, err := c.Submit(context.Background(), req)
		require.Error(t, err, "%+v", req)
		assert.Empty(t, id)
		assert.ErrorIs(t, err, provider.ErrInvalid)
		var te *provider.TransportError
		assert.False(t, errors.As(err, &te))
		noKey(t, err)
	}
	assert.Zero(t, f.count(), "an invalid request reached the server")

	// The id checks of the res.php calls send nothing either.
	_, err := c.Poll(context.Background(), nil)
	assert.ErrorIs(t, err, provider.ErrInvalid)
	_, err = c.Poll(context.Background(), []string{"1", "2,3"})
	assert.ErrorIs(t, err, provider.ErrInvalid)
	_, err = c.Poll(context.Background(), []string{"1", "2|3"})
	assert.ErrorIs(t, err, provider.ErrInvalid)
	_, err = c.Poll(context.Background(), make([]string, provider.MaxBatch+1))
	assert.ErrorIs(t, err, provider.ErrInvalid)
	_, _, err = c.Cost(context.Background(), "")
	assert.ErrorIs(t, err, provider.ErrInvalid)
	assert.ErrorIs(t, c.Report(context.Background(), "a b", true), provider.ErrInvalid)
	assert.Zero(t, f.count(), "an invalid request reached the server")
}

func TestRedactProxy(t *testing.T) {
	tests := []struct{ in, want string }{
		{"user:pass@1.2.3.4:8080", "***:***@1.2.3.4:8080"},
		{"1.2.3.4:8080", "1.2.3.4:8080"},
		{"user@1.2.3.4:8080", "***@1.2.3.4:8080"},
		{"us:er:p@ss@host:1", "***:***@host:1"},
		{"http://user:pass@host:3128", "http://***:***@host:3128"},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, provider.RedactProxy(tt.in), tt.in)
	}
}

func TestIsTokenMethod(t *testing.T) {
	for _, m := range []string{"userrecaptcha", "hcaptcha", "turnstile", "funcaptcha", "geetest", "geetest_v4"} {
		assert.True(t, provider.IsTokenMethod(m), m)
	}
	for _, m := range []string{"post", "base64", "", "textcaptcha", "USERRECAPTCHA"} {
		assert.False(t, provider.IsTokenMethod(m), m)
	}
}
