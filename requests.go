package captchafsm

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
)

// Typed requests for the methods the provider's client checks: each
// Request method returns exactly the engine.Request the map form would,
// the parameters named as package provider names them, a field left at its
// zero value left out. A misspelt field does not compile; a missing
// required one is refused by Submit, naming the parameter, before anything
// is stored or sent. Every other method and parameter takes the map form:
//
//	engine.Request{Method: "capy", Params: map[string]string{"captchakey": k, "pageurl": u}}

// Proxy is a proxy the provider's worker solves the challenge through (the
// page then sees the bot's own address). Type is HTTP, HTTPS, SOCKS4 or
// SOCKS5; Address is host:port or login:password@host:port. The login
// and password are hidden in every history and log.
type Proxy struct {
	Type, Address string
}

// RecaptchaV2 is a reCAPTCHA v2 checkbox or invisible challenge
// (method userrecaptcha).
type RecaptchaV2 struct {
	// SiteKey is the page's data-sitekey (the API's googlekey).
	SiteKey string
	PageURL string
	// Invisible marks an invisible reCAPTCHA; DataS is its data-s value,
	// where the page has one.
	Invisible bool
	DataS     string
	UserAgent string
	Cookies   string
	Proxy     Proxy
}

// Request returns the request.
func (r RecaptchaV2) Request() Request {
	p := params{}
	p.set(provider.ParamGoogleKey, r.SiteKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.flag(provider.ParamInvisible, r.Invisible)
	p.set(provider.ParamDataS, r.DataS)
	p.browser(r.UserAgent, r.Cookies, r.Proxy)
	return p.request("userrecaptcha")
}

// RecaptchaV3 is a reCAPTCHA v3 score (method userrecaptcha, version v3).
type RecaptchaV3 struct {
	SiteKey string
	PageURL string
	// Action is the page's action name; MinScore the lowest score wanted
	// (0.1 to 0.9; zero: the provider's default).
	Action   string
	MinScore float64
	// Enterprise marks reCAPTCHA Enterprise v3.
	Enterprise bool
	UserAgent  string
	Proxy      Proxy
}

// Request returns the request.
func (r RecaptchaV3) Request() Request {
	p := params{provider.ParamVersion: "v3"}
	p.set(provider.ParamGoogleKey, r.SiteKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.set(provider.ParamAction, r.Action)
	if r.MinScore != 0 {
		p[provider.ParamMinScore] = strconv.FormatFloat(r.MinScore, 'f', -1, 64)
	}
	p.flag(provider.ParamEnterprise, r.Enterprise)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("userrecaptcha")
}

// RecaptchaEnterprise is a reCAPTCHA Enterprise v2 challenge (method
// userrecaptcha, enterprise 1); Enterprise v3 is RecaptchaV3 with
// Enterprise set.
type RecaptchaEnterprise struct {
	SiteKey string
	PageURL string
	// Action is the page's action, where it has one; DataS its s value.
	Action    string
	DataS     string
	Invisible bool
	UserAgent string
	Cookies   string
	Proxy     Proxy
}

// Request returns the request.
func (r RecaptchaEnterprise) Request() Request {
	p := params{provider.ParamEnterprise: "1"}
	p.set(provider.ParamGoogleKey, r.SiteKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.set(provider.ParamAction, r.Action)
	p.set(provider.ParamDataS, r.DataS)
	p.flag(provider.ParamInvisible, r.Invisible)
	p.browser(r.UserAgent, r.Cookies, r.Proxy)
	return p.request("userrecaptcha")
}

// HCaptcha is an hCaptcha challenge (method hcaptcha).
type HCaptcha struct {
	SiteKey   string
	PageURL   string
	Invisible bool
	// Data is the page's rqdata, where it sets one (then UserAgent must be
	// the browser's that will use the token).
	Data      string
	UserAgent string
	Proxy     Proxy
}

// Request returns the request.
func (r HCaptcha) Request() Request {
	p := params{}
	p.set(provider.ParamSiteKey, r.SiteKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.flag(provider.ParamInvisible, r.Invisible)
	p.set(provider.ParamData, r.Data)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("hcaptcha")
}

// Turnstile is a Cloudflare Turnstile widget (method turnstile).
type Turnstile struct {
	SiteKey string
	PageURL string
	// Action, Data (cData) and PageData (chlPageData) are the widget's,
	// where the page sets them.
	Action    string
	Data      string
	PageData  string
	UserAgent string
	Proxy     Proxy
}

// Request returns the request.
func (r Turnstile) Request() Request {
	p := params{}
	p.set(provider.ParamSiteKey, r.SiteKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.set(provider.ParamAction, r.Action)
	p.set(provider.ParamData, r.Data)
	p.set(provider.ParamPageData, r.PageData)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("turnstile")
}

// FunCaptcha is an Arkose Labs FunCaptcha (method funcaptcha).
type FunCaptcha struct {
	PublicKey string
	PageURL   string
	// SURL is the service URL (surl), where the page names one; Blob the
	// data blob (data[blob]) it passes.
	SURL      string
	Blob      string
	UserAgent string
	Proxy     Proxy
}

// Request returns the request.
func (r FunCaptcha) Request() Request {
	p := params{}
	p.set(provider.ParamPublicKey, r.PublicKey)
	p.set(provider.ParamPageURL, r.PageURL)
	p.set(provider.ParamSURL, r.SURL)
	p.set(provider.ParamBlob, r.Blob)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("funcaptcha")
}

// GeeTest is a GeeTest v3 challenge (method geetest): its gt and a fresh
// challenge, which expires quickly.
type GeeTest struct {
	GT        string
	Challenge string
	PageURL   string
	// APIServer is the api_server domain, where the page names one.
	APIServer string
	UserAgent string
	Proxy     Proxy
}

// Request returns the request.
func (r GeeTest) Request() Request {
	p := params{}
	p.set(provider.ParamGT, r.GT)
	p.set(provider.ParamChallenge, r.Challenge)
	p.set(provider.ParamPageURL, r.PageURL)
	p.set(provider.ParamAPIServer, r.APIServer)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("geetest")
}

// GeeTestV4 is a GeeTest v4 challenge (method geetest_v4).
type GeeTestV4 struct {
	CaptchaID string
	PageURL   string
	UserAgent string
	Proxy     Proxy
}

// Request returns the request.
func (r GeeTestV4) Request() Request {
	p := params{}
	p.set(provider.ParamCaptchaID, r.CaptchaID)
	p.set(provider.ParamPageURL, r.PageURL)
	p.browser(r.UserAgent, "", r.Proxy)
	return p.request("geetest_v4")
}

// Image is an image captcha, its answer text (method base64): a PNG, JPEG
// or GIF of 100 bytes to 100 KiB (provider.MinImageSize, MaxImageSize).
type Image struct {
	// Bytes is the image file's content.
	Bytes []byte
	// Numeric says what the answer holds: 1 digits only, 2 letters only,
	// 3 digits or letters, 4 both (0: not said).
	Numeric int
	// MinLen and MaxLen bound the answer's length (0: not said).
	MinLen, MaxLen int
	// Phrase: the answer has a space; CaseSensitive: its case matters;
	// Calc: the image is a sum, and the answer its result.
	Phrase, CaseSensitive, Calc bool
	// Lang is the answer's language (a code such as "en"); Instructions
	// a note for the worker ("type the red letters").
	Lang         string
	Instructions string
}

// ImageFile reads an image captcha from a file. A file larger than
// provider.MaxImageSize is refused without being read whole.
func ImageFile(path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("captchafsm: image: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, provider.MaxImageSize+1))
	if err != nil {
		return Image{}, fmt.Errorf("captchafsm: image %s: %w", path, err)
	}
	if len(b) > provider.MaxImageSize {
		return Image{}, fmt.Errorf("captchafsm: image %s: larger than the %d bytes the provider takes: %w", path, provider.MaxImageSize, ErrInvalid)
	}
	return Image{Bytes: b}, nil
}

// Request returns the request.
func (r Image) Request() Request {
	p := params{provider.ParamBody: base64.StdEncoding.EncodeToString(r.Bytes)}
	p.number(provider.ParamNumeric, r.Numeric)
	p.number(provider.ParamMinLen, r.MinLen)
	p.number(provider.ParamMaxLen, r.MaxLen)
	p.flag(provider.ParamPhrase, r.Phrase)
	p.flag(provider.ParamRegSense, r.CaseSensitive)
	p.flag(provider.ParamCalc, r.Calc)
	p.set(provider.ParamLang, r.Lang)
	p.set(provider.ParamTextInstructions, r.Instructions)
	return p.request("base64")
}

// params builds a request's parameters, leaving zero values out.
type params map[string]string

func (p params) set(name, v string) {
	if v != "" {
		p[name] = v
	}
}

func (p params) flag(name string, on bool) {
	if on {
		p[name] = "1"
	}
}

func (p params) number(name string, n int) {
	if n != 0 {
		p[name] = strconv.Itoa(n)
	}
}

// browser sets what the token methods share: the browser's user agent and
// cookies, and the proxy.
func (p params) browser(userAgent, cookies string, proxy Proxy) {
	p.set(provider.ParamUserAgent, userAgent)
	p.set(provider.ParamCookies, cookies)
	p.set(provider.ParamProxy, proxy.Address)
	p.set(provider.ParamProxyType, proxy.Type)
}

func (p params) request(method string) engine.Request {
	return engine.Request{Method: method, Params: map[string]string(p)}
}
