package provider

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Image size limits of the post and base64 methods, on the decoded bytes.
const (
	MinImageSize = 100
	MaxImageSize = 100 * 1024
)

// MaxBatch is the largest number of ids Poll sends in one request.
const MaxBatch = 100

// proxyTypes are the accepted values of the proxytype parameter.
var proxyTypes = map[string]bool{"HTTP": true, "HTTPS": true, "SOCKS4": true, "SOCKS5": true}

// tokenMethods are the methods whose answer is a token a worker obtains by
// solving the challenge in a browser: slower than images, so the engine
// polls them later.
var tokenMethods = map[string]bool{
	"userrecaptcha":    true,
	"hcaptcha":         true,
	"turnstile":        true,
	"funcaptcha":       true,
	"geetest":          true,
	"geetest_v4":       true,
	"capy":             true,
	"keycaptcha":       true,
	"lemin":            true,
	"amazon_waf":       true,
	"cybersiara":       true,
	"mt_captcha":       true,
	"friendly_captcha": true,
	"cutcaptcha":       true,
	"datadome":         true,
	"tencent":          true,
	"atb_captcha":      true,
	"yandex":           true,
}

// IsTokenMethod reports whether method is a reCAPTCHA-class token method
// (userrecaptcha, hcaptcha, turnstile, funcaptcha, geetest, geetest_v4 and
// the other browser challenges) rather than an image method (post, base64)
// or one this package does not know.
func IsTokenMethod(method string) bool { return tokenMethods[method] }

// required lists the parameters each known method must have. pageurl, when
// listed or given, must be an absolute http(s) URL.
var required = map[string][]string{
	"userrecaptcha": {"googlekey", "pageurl"},
	"hcaptcha":      {"sitekey", "pageurl"},
	"turnstile":     {"sitekey", "pageurl"},
	"funcaptcha":    {"publickey", "pageurl"},
	"geetest":       {"gt", "challenge", "pageurl"},
	"geetest_v4":    {"captcha_id", "pageurl"},
}

// ValidateKey checks the API key's format: 32 hexadecimal characters. The
// error never repeats the key.
func ValidateKey(key string) error {
	if len(key) != 32 {
		return fieldErr("key", "must be 32 hex characters")
	}
	for i := 0; i < len(key); i++ {
		if !isHex(key[i]) {
			return fieldErr("key", "must be 32 hex characters")
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Validate checks a request before anything is sent: the method's name, its
// required parameters and the common ones (soft_id, pingback, proxy and
// proxytype). The error is a *FieldError naming the parameter and wraps
// ErrInvalid. Methods this package does not know pass with their
// parameters as given, after the common checks.
//
// Params must not hold key (the key belongs to Config, and tasks are
// stored), method (it is Request.Method) or json (the client sets it).
func Validate(req Request) error {
	if req.Method == "" {
		return fieldErr("method", "is required")
	}
	if !isMethodName(req.Method) {
		return fieldErr("method", "must be lower-case letters, digits and underscores")
	}
	if err := validateCommon(req.Params); err != nil {
		return err
	}
	switch req.Method {
	case "post", "base64":
		_, _, err := decodeImage(req.Params)
		return err
	case "userrecaptcha":
		if err := requireAll(req); err != nil {
			return err
		}
		return validateRecaptcha(req.Params)
	}
	return requireAll(req)
}

func isMethodName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

func requireAll(req Request) error {
	for _, name := range required[req.Method] {
		if strings.TrimSpace(req.Params[name]) == "" {
			return fieldErr(name, "is required for method %s", req.Method)
		}
	}
	return nil
}

func validateCommon(p map[string]string) error {
	for name := range p {
		switch name {
		case "":
			return fieldErr("params", "a parameter has an empty name")
		case "key":
			return fieldErr("key", "must not be in Params: the client sends Config.Key")
		case "method":
			return fieldErr("method", "must not be in Params: use Request.Method")
		case "json":
			return fieldErr("json", "must not be in Params: the client sets it")
		}
	}
	if v, ok := p["pageurl"]; ok {
		if err := checkHTTPURL("pageurl", v); err != nil {
			return err
		}
	}
	if v, ok := p["pingback"]; ok {
		if err := checkHTTPURL("pingback", v); err != nil {
			return err
		}
	}
	if v, ok := p["soft_id"]; ok && !isDigits(v) {
		return fieldErr("soft_id", "must be a number")
	}
	proxy, hasProxy := p["proxy"]
	ptype, hasType := p["proxytype"]
	switch {
	case hasProxy && !hasType:
		return fieldErr("proxytype", "is required with proxy (HTTP, HTTPS, SOCKS4 or SOCKS5)")
	case hasType && !hasProxy:
		return fieldErr("proxy", "is required with proxytype")
	case hasProxy:
		if !proxyTypes[ptype] {
			return fieldErr("proxytype", "must be HTTP, HTTPS, SOCKS4 or SOCKS5")
		}
		if err := checkProxy(proxy); err != nil {
			return err
		}
	}
	return nil
}

// checkHTTPURL never repeats the value: a page URL may carry session
// tokens in its query.
func checkHTTPURL(field, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(field, "must be an absolute http(s) URL")
	}
	return nil
}

// checkProxy accepts "host:port" and "login:password@host:port".
func checkProxy(v string) error {
	hostport := v
	if at := strings.LastIndexByte(v, '@'); at >= 0 {
		if at == 0 {
			return fieldErr("proxy", "has an empty login (want login:password@host:port)")
		}
		hostport = v[at+1:]
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || strings.ContainsAny(host, "/ ") {
		return fieldErr("proxy", "must be host:port or login:password@host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fieldErr("proxy", "has an invalid port")
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func validateRecaptcha(p map[string]string) error {
	for _, flag := range []string{"invisible", "enterprise"} {
		if v, ok := p[flag]; ok && v != "0" && v != "1" {
			return fieldErr(flag, "must be 0 or 1")
		}
	}
	version, hasVersion := p["version"]
	if hasVersion && version != "v2" && version != "v3" {
		return fieldErr("version", "must be v2 or v3")
	}
	if v, ok := p["action"]; ok && strings.TrimSpace(v) == "" {
		return fieldErr("action", "must not be empty when given")
	}
	if v, ok := p["min_score"]; ok {
		if version != "v3" {
			return fieldErr("min_score", "is only for version=v3")
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0.1 || f > 0.9 {
			return fieldErr("min_score", "must be a number from 0.1 to 0.9")
		}
	}
	return nil
}

// imageKind returns the file extension of a PNG, JPEG or GIF by its magic
// bytes, "" for anything else.
func imageKind(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return "jpg"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	}
	return ""
}

// decodeImage checks Params["body"] of an image method and returns the
// decoded bytes, the extension their magic bytes say, and the base64 text
// without line breaks.
func decodeImage(p map[string]string) (data []byte, ext string, err error) {
	raw, ok := p["body"]
	if !ok || raw == "" {
		return nil, "", fieldErr("body", "is required: the image's bytes in base64")
	}
	if strings.HasPrefix(raw, "data:") {
		return nil, "", fieldErr("body", "must be bare base64, without a data: URI prefix")
	}
	clean := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, raw)
	// Checking the encoded length first keeps a huge body from being decoded.
	if base64.StdEncoding.DecodedLen(len(clean)) > MaxImageSize+2 {
		return nil, "", fieldErr("body", "image is larger than %d bytes", MaxImageSize)
	}
	data, err = base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, "", fieldErr("body", "is not valid base64")
	}
	switch {
	case len(data) < MinImageSize:
		return nil, "", fieldErr("body", "image is smaller than %d bytes", MinImageSize)
	case len(data) > MaxImageSize:
		return nil, "", fieldErr("body", "image is larger than %d bytes", MaxImageSize)
	}
	ext = imageKind(data)
	if ext == "" {
		return nil, "", fieldErr("body", "is not a PNG, JPEG or GIF image")
	}
	return data, ext, nil
}

// RedactProxy hides a proxy's login and password for logs and history:
// "user:pass@1.2.3.4:8080" becomes "***:***@1.2.3.4:8080". A proxy without
// credentials is returned as it is; a scheme prefix ("http://") is kept.
func RedactProxy(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	prefix := ""
	if i := strings.Index(s[:at], "://"); i >= 0 {
		prefix = s[:i+3]
	}
	cred := s[len(prefix):at]
	masked := "***"
	if strings.Contains(cred, ":") {
		masked = "***:***"
	}
	return prefix + masked + s[at:]
}
