package captchafsm_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm"
	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
)

// png returns n bytes that start as a PNG file does: an image as the
// provider's checks see it.
func png(n int) []byte {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	for i := 8; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

const (
	page     = "https://example.com/login"
	proxy    = "bot:secret@10.0.0.1:3128"
	agent    = "Mozilla/5.0 (X11; Linux x86_64)"
	siteKey  = "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-"
	cfKey    = "0x4AAAAAAAC3DHQFLr1GavRN"
	hcKey    = "a5f74b19-9e45-40e0-b45d-47ff91b7a6c2"
	arkoseID = "69A21A01-CC7B-B9C6-0F9A-E7FA06677FFC"
)

// TestTypedRequests: each typed request gives exactly the request its map
// form spells (the parameter names of the provider's table), one the
// provider's checks accept, with every parameter its method requires.
func TestTypedRequests(t *testing.T) {
	img := png(500)
	tests := []struct {
		name string
		got  captchafsm.Request
		want engine.Request
	}{
		{"reCAPTCHA v2", captchafsm.RecaptchaV2{SiteKey: siteKey, PageURL: page}.Request(),
			engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": siteKey, "pageurl": page}}},
		{"reCAPTCHA v2 invisible, every field", captchafsm.RecaptchaV2{SiteKey: siteKey, PageURL: page, Invisible: true, DataS: "s-value",
			UserAgent: agent, Cookies: "a=1; b=2", Proxy: captchafsm.Proxy{Type: "HTTP", Address: proxy}}.Request(),
			engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": siteKey, "pageurl": page, "invisible": "1",
				"data-s": "s-value", "userAgent": agent, "cookies": "a=1; b=2", "proxy": proxy, "proxytype": "HTTP"}}},
		{"reCAPTCHA v3", captchafsm.RecaptchaV3{SiteKey: siteKey, PageURL: page, Action: "login", MinScore: 0.3}.Request(),
			engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": siteKey, "pageurl": page, "version": "v3",
				"action": "login", "min_score": "0.3"}}},
		{"reCAPTCHA v3 Enterprise", captchafsm.RecaptchaV3{SiteKey: siteKey, PageURL: page, Enterprise: true}.Request(),
			engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": siteKey, "pageurl": page, "version": "v3", "enterprise": "1"}}},
		{"reCAPTCHA Enterprise", captchafsm.RecaptchaEnterprise{SiteKey: siteKey, PageURL: page, Action: "submit", DataS: "s"}.Request(),
			engine.Request{Method: "userrecaptcha", Params: map[string]string{"googlekey": siteKey, "pageurl": page, "enterprise": "1",
				"action": "submit", "data-s": "s"}}},
		{"hCaptcha", captchafsm.HCaptcha{SiteKey: hcKey, PageURL: page, Invisible: true, Data: "rq", UserAgent: agent}.Request(),
			engine.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": hcKey, "pageurl": page, "invisible": "1", "data": "rq", "userAgent": agent}}},
		{"Turnstile", captchafsm.Turnstile{SiteKey: cfKey, PageURL: page}.Request(),
			engine.Request{Method: "turnstile", Params: map[string]string{"sitekey": cfKey, "pageurl": page}}},
		{"Turnstile challenge page", captchafsm.Turnstile{SiteKey: cfKey, PageURL: page, Action: "managed", Data: "c", PageData: "pd",
			UserAgent: agent, Proxy: captchafsm.Proxy{Type: "SOCKS5", Address: "10.0.0.2:1080"}}.Request(),
			engine.Request{Method: "turnstile", Params: map[string]string{"sitekey": cfKey, "pageurl": page, "action": "managed", "data": "c",
				"pagedata": "pd", "userAgent": agent, "proxy": "10.0.0.2:1080", "proxytype": "SOCKS5"}}},
		{"FunCaptcha", captchafsm.FunCaptcha{PublicKey: arkoseID, PageURL: page, SURL: "https://client-api.arkoselabs.com", Blob: "blob"}.Request(),
			engine.Request{Method: "funcaptcha", Params: map[string]string{"publickey": arkoseID, "pageurl": page,
				"surl": "https://client-api.arkoselabs.com", "data[blob]": "blob"}}},
		{"GeeTest v3", captchafsm.GeeTest{GT: "81388ea1fc187e0c335c0a8907ff2625", Challenge: "12345678abc90123d45678ef90123a456b", PageURL: page,
			APIServer: "api-na.geetest.com"}.Request(),
			engine.Request{Method: "geetest", Params: map[string]string{"gt": "81388ea1fc187e0c335c0a8907ff2625",
				"challenge": "12345678abc90123d45678ef90123a456b", "pageurl": page, "api_server": "api-na.geetest.com"}}},
		{"GeeTest v4", captchafsm.GeeTestV4{CaptchaID: "e392e1d7fd421dc63325744d5a2b9c73", PageURL: page}.Request(),
			engine.Request{Method: "geetest_v4", Params: map[string]string{"captcha_id": "e392e1d7fd421dc63325744d5a2b9c73", "pageurl": page}}},
		{"image", captchafsm.Image{Bytes: img}.Request(),
			engine.Request{Method: "base64", Params: map[string]string{"body": base64.StdEncoding.EncodeToString(img)}}},
		{"image, every field", captchafsm.Image{Bytes: img, Numeric: 4, MinLen: 4, MaxLen: 6, Phrase: true, CaseSensitive: true, Calc: true,
			Lang: "en", Instructions: "type the red letters"}.Request(),
			engine.Request{Method: "base64", Params: map[string]string{"body": base64.StdEncoding.EncodeToString(img), "numeric": "4",
				"min_len": "4", "max_len": "6", "phrase": "1", "regsense": "1", "calc": "1", "lang": "en", "textinstructions": "type the red letters"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
			require.NoError(t, provider.Validate(provider.Request{Method: tt.got.Method, Params: tt.got.Params}))
			m, ok := provider.LookupMethod(tt.got.Method)
			require.True(t, ok, "a method of the provider's table")
			for _, name := range m.Required {
				assert.NotEmpty(t, tt.got.Params[name], "%s requires %s", m.Name, name)
			}
		})
	}
}

// TestTypedRequestMissingField: a required field left empty is left out,
// and the provider's check names the parameter.
func TestTypedRequestMissingField(t *testing.T) {
	for want, req := range map[string]captchafsm.Request{
		"googlekey":  captchafsm.RecaptchaV2{PageURL: page}.Request(),
		"pageurl":    captchafsm.Turnstile{SiteKey: cfKey}.Request(),
		"publickey":  captchafsm.FunCaptcha{PageURL: page}.Request(),
		"challenge":  captchafsm.GeeTest{GT: "gt", PageURL: page}.Request(),
		"captcha_id": captchafsm.GeeTestV4{PageURL: page}.Request(),
		"body":       captchafsm.Image{}.Request(),
	} {
		err := provider.Validate(provider.Request{Method: req.Method, Params: req.Params})
		var fe *provider.FieldError
		require.ErrorAs(t, err, &fe, want)
		assert.Equal(t, want, fe.Field)
	}
	for _, r := range []captchafsm.Request{captchafsm.RecaptchaV2{}.Request(), captchafsm.HCaptcha{}.Request(), captchafsm.Image{}.Request()} {
		keys := make([]string, 0, len(r.Params))
		for k := range r.Params {
			keys = append(keys, k)
		}
		assert.False(t, slices.ContainsFunc(keys, func(k string) bool { return k != "body" && r.Params[k] == "" }),
			"no empty parameter is sent: %v", r.Params)
	}
}

func TestImageFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "captcha.png")
	require.NoError(t, os.WriteFile(good, png(700), 0o600))
	img, err := captchafsm.ImageFile(good)
	require.NoError(t, err)
	assert.Equal(t, png(700), img.Bytes)
	req := img.Request()
	require.NoError(t, provider.Validate(provider.Request{Method: req.Method, Params: req.Params}))

	big := filepath.Join(dir, "big.png")
	require.NoError(t, os.WriteFile(big, png(provider.MaxImageSize+1), 0o600))
	_, err = captchafsm.ImageFile(big)
	require.ErrorIs(t, err, captchafsm.ErrInvalid)
	assert.ErrorContains(t, err, "big.png")

	_, err = captchafsm.ImageFile(filepath.Join(dir, "missing.png"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "captchafsm: image: "), err.Error())
}
