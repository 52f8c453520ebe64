package provider

import "sort"

// MethodKind says how a method's task is solved, which sets how soon it
// may be polled and how long it takes.
type MethodKind string

// The kinds of method.
const (
	// ImageMethod: an image (or a picture puzzle) read by a worker; its
	// answer is text or coordinates. Fast.
	ImageMethod MethodKind = "image"
	// TokenMethod: a reCAPTCHA-class challenge a worker solves in a
	// browser; its answer is a token. Slow: the docs ask for a longer
	// first wait (FirstPollMinToken).
	TokenMethod MethodKind = "token"
	// OtherMethod: text and audio questions.
	OtherMethod MethodKind = "other"
)

// Method is one method of the in.php API: its name, its kind and the
// parameters a task of it must carry. The table follows the provider's
// docs and the required fields of the official JavaScript client
// (@2captcha/captcha-solver), which checks them before sending.
type Method struct {
	Name string
	Kind MethodKind
	// Required are the parameters a task must have. For post the image is
	// the multipart file, which the client sends from Params["body"].
	Required []string
	// OneOf, when set, lists parameters of which at least one is required
	// (bounding_box needs textinstructions or imginstructions).
	OneOf []string
}

// methods is the single table of methods: the client's Validate, the
// engine's first-poll delay (IsTokenMethod), the CLI's check of --method
// and the protocol server's ERROR_NO_SUCH_METHOD all read it.
var methods = []Method{
	{Name: "post", Kind: ImageMethod, Required: []string{ParamBody}},
	{Name: "base64", Kind: ImageMethod, Required: []string{ParamBody}},
	{Name: "rotatecaptcha", Kind: ImageMethod, Required: []string{"body"}},
	{Name: "bounding_box", Kind: ImageMethod, Required: []string{"image"}, OneOf: []string{"textinstructions", "imginstructions"}},
	{Name: "drag_drop", Kind: ImageMethod, Required: []string{"body", "images"}},
	{Name: "vkimage", Kind: ImageMethod, Required: []string{"body", "steps"}},
	{Name: "temuimage", Kind: ImageMethod, Required: []string{"body", "part1", "part2", "part3"}},

	{Name: "userrecaptcha", Kind: TokenMethod, Required: []string{ParamGoogleKey, ParamPageURL}},
	{Name: "hcaptcha", Kind: TokenMethod, Required: []string{ParamSiteKey, ParamPageURL}},
	{Name: "turnstile", Kind: TokenMethod, Required: []string{ParamSiteKey, ParamPageURL}},
	{Name: "cloudflare_challenge", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "funcaptcha", Kind: TokenMethod, Required: []string{ParamPublicKey, ParamPageURL}},
	// CaptchaAI also takes GeeTest v4 as method=geetest&version=4 with the
	// captcha id in gt; the protocol server accepts both spellings.
	{Name: "geetest", Kind: TokenMethod, Required: []string{ParamGT, ParamChallenge, ParamPageURL}},
	{Name: "geetest_v4", Kind: TokenMethod, Required: []string{ParamCaptchaID, ParamPageURL}},
	{Name: "capy", Kind: TokenMethod, Required: []string{"captchakey", "pageurl"}},
	{Name: "keycaptcha", Kind: TokenMethod, Required: []string{"s_s_c_user_id", "s_s_c_session_id", "s_s_c_web_server_sign", "s_s_c_web_server_sign2", "pageurl"}},
	{Name: "lemin", Kind: TokenMethod, Required: []string{"captcha_id", "div_id", "pageurl"}},
	{Name: "amazon_waf", Kind: TokenMethod, Required: []string{"sitekey", "iv", "context", "pageurl"}},
	{Name: "cybersiara", Kind: TokenMethod, Required: []string{"master_url_id", "pageurl", "userAgent"}},
	{Name: "mt_captcha", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "friendly_captcha", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "cutcaptcha", Kind: TokenMethod, Required: []string{"misery_key", "api_key", "pageurl"}},
	{Name: "datadome", Kind: TokenMethod, Required: []string{"captcha_url", "pageurl", "userAgent", "proxy", "proxytype"}},
	{Name: "tencent", Kind: TokenMethod, Required: []string{"app_id", "pageurl"}},
	{Name: "atb_captcha", Kind: TokenMethod, Required: []string{"app_id", "api_server", "pageurl"}},
	{Name: "yandex", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "prosopo", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "captchafox", Kind: TokenMethod, Required: []string{"sitekey", "pageurl", "userAgent", "proxy", "proxytype"}},
	{Name: "vkcaptcha", Kind: TokenMethod, Required: []string{"redirect_uri", "userAgent", "proxy", "proxytype"}},
	{Name: "altcha", Kind: TokenMethod, Required: []string{"pageurl"}, OneOf: []string{"challenge_url", "challenge_json"}},
	{Name: "binance", Kind: TokenMethod, Required: []string{"sitekey", "validate_id", "pageurl"}},
	{Name: "yidun", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "alibaba", Kind: TokenMethod, Required: []string{"scene_id", "prefix", "pageurl"}},
	{Name: "tspd", Kind: TokenMethod, Required: []string{"tspd_cookie", "html_page_base64", "pageurl", "proxy", "proxytype"}},
	{Name: "basilisk", Kind: TokenMethod, Required: []string{"sitekey", "pageurl"}},
	{Name: "hunt", Kind: TokenMethod, Required: []string{"api_get_lib", "pageurl"}},

	// A text question: the provider takes it without a method parameter;
	// method=textcaptcha names it explicitly.
	{Name: "textcaptcha", Kind: OtherMethod, Required: []string{"textcaptcha"}},
	{Name: "audio", Kind: OtherMethod, Required: []string{"body", "lang"}},
	{Name: "bls", Kind: ImageMethod},
}

var methodByName = func() map[string]Method {
	m := make(map[string]Method, len(methods))
	for _, x := range methods {
		m[x.Name] = x
	}
	return m
}()

// LookupMethod returns the method called name, false for a name the
// provider does not document.
func LookupMethod(name string) (Method, bool) {
	m, ok := methodByName[name]
	return m, ok
}

// Methods returns every known method, sorted by name. The slice is a copy.
func Methods() []Method {
	out := append([]Method(nil), methods...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsTokenMethod reports whether method is a reCAPTCHA-class token method
// (userrecaptcha, hcaptcha, turnstile, funcaptcha, geetest, geetest_v4 and
// the other browser challenges) rather than an image method (post, base64)
// or one this package does not know.
func IsTokenMethod(method string) bool { return methodByName[method].Kind == TokenMethod }

// SuggestMethod returns the known method nearest to name (at most two edits
// away, "hcapcha" → "hcaptcha"), "" when none is that near.
func SuggestMethod(name string) string {
	best, bestD := "", 3
	for _, m := range methods {
		if d := editDistance(name, m.Name, bestD); d < bestD {
			best, bestD = m.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
