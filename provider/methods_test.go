package provider_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

func TestMethods(t *testing.T) {
	ms := provider.Methods()
	require.NotEmpty(t, ms)
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
		assert.Contains(t, []provider.MethodKind{provider.ImageMethod, provider.TokenMethod, provider.OtherMethod}, m.Kind, m.Name)
		got, ok := provider.LookupMethod(m.Name)
		assert.True(t, ok, m.Name)
		assert.Equal(t, m, got)
		assert.Equal(t, m.Kind == provider.TokenMethod, provider.IsTokenMethod(m.Name), m.Name)
	}
	assert.True(t, sort.StringsAreSorted(names))
	// Every method the official JavaScript client sends is known.
	for _, name := range []string{"userrecaptcha", "hcaptcha", "geetest", "geetest_v4", "yandex", "base64", "funcaptcha",
		"lemin", "amazon_waf", "turnstile", "capy", "datadome", "cybersiara", "mt_captcha", "cutcaptcha", "friendly_captcha",
		"bounding_box", "rotatecaptcha", "keycaptcha", "tencent", "atb_captcha", "prosopo", "captchafox", "vkimage",
		"vkcaptcha", "temuimage", "altcha", "binance", "audio", "yidun", "alibaba", "tspd", "basilisk", "hunt", "drag_drop",
		"post", "textcaptcha"} {
		_, ok := provider.LookupMethod(name)
		assert.True(t, ok, name)
	}
	for _, name := range []string{"hcapcha", "no_such_method", "", "HCAPTCHA"} {
		_, ok := provider.LookupMethod(name)
		assert.False(t, ok, name)
		assert.False(t, provider.IsTokenMethod(name), name)
	}
}

func TestSuggestMethod(t *testing.T) {
	for in, want := range map[string]string{
		"hcapcha":        "hcaptcha",
		"userrecapcha":   "userrecaptcha",
		"turnstyle":      "turnstile",
		"geetestv4":      "geetest_v4",
		"base46":         "base64",
		"no_such_method": "",
		"x":              "",
	} {
		assert.Equal(t, want, provider.SuggestMethod(in), in)
	}
}
