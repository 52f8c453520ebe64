package provider

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/url"
	"sort"
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

// Bounds on a task's parameters, checked before anything is stored or
// sent: a task is written to the database and echoed in history, so a
// runaway value (a 1 MB pageurl) must stop here.
const (
	// MaxParams is the most parameters one task may carry.
	MaxParams = 64
	// MaxParamName is the longest parameter name.
	MaxParamName = 64
	// MaxURL is the longest URL parameter (pageurl, pingback, captcha_url,
	// ...): browsers and servers commonly stop near 2 KiB.
	MaxURL = 2048
	// MaxParamValue is the longest value of an ordinary parameter (keys,
	// user agents, cookies, rqdata blobs).
	MaxParamValue = 16 << 10
	// MaxLargeValue is the longest base64 payload (an image or audio file,
	// an HTML page): a 1 MB file in base64 with room to spare. Images of
	// post and base64 are held to MaxImageSize once decoded.
	MaxLargeValue = 1536 << 10
)

// urlParams are the parameters whose value is a URL.
var urlParams = map[string]bool{
	"pageurl": true, "pingback": true, "captcha_url": true, "api_server": true, "redirect_uri": true,
	"surl": true, "challenge_url": true, "api_get_lib": true, "yidun_get_lib": true,
}

// largeParams are the parameters whose value is a base64 file or page.
var largeParams = map[string]bool{
	"body": true, "image": true, "imginstructions": true, "images": true,
	"html_page_base64": true, "challenge_json": true,
}

// MaxValue is the longest value Validate accepts for the parameter name.
func MaxValue(name string) int {
	switch {
	case urlParams[name]:
		return MaxURL
	case largeParams[name]:
		return MaxLargeValue
	}
	return MaxParamValue
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

// Validate checks a request before anything is sent: the method's name,
// the size of every parameter (MaxParams, MaxValue), the method's required
// parameters (LookupMethod) and the common ones (soft_id, pingback, proxy
// and proxytype). The error is a *FieldError naming the parameter and
// wraps ErrInvalid. Methods this package does not know pass with their
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
	if len(req.Method) > MaxParamName {
		return fieldErr("method", "is %d characters, at most %d", len(req.Method), MaxParamName)
	}
	if err := validateSizes(req.Params); err != nil {
		return err
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

// validateSizes bounds the number of parameters, their names and values.
// Errors name the parameter but never repeat its value.
func validateSizes(p map[string]string) error {
	if len(p) > MaxParams {
		return fieldErr("params", "%d parameters, at most %d", len(p), MaxParams)
	}
	for _, name := range sortedNames(p) {
		if name == "" {
			return fieldErr("params", "a parameter has an empty name")
		}
		if len(name) > MaxParamName || !isParamName(name) {
			return fieldErr("params", "parameter name %.40q: want at most %d letters, digits, '_', '-', '.', '[' or ']'", name, MaxParamName)
		}
		if n, limit := len(p[name]), MaxValue(name); n > limit {
			return fieldErr(name, "is %d bytes, longer than the %d accepted", n, limit)
		}
	}
	return nil
}

func isParamName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_-.[]", c) >= 0) {
			return false
		}
	}
	return true
}

// sortedNames keeps which error comes first independent of map order.
func sortedNames(p map[string]string) []string {
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func requireAll(req Request) error {
	m, ok := LookupMethod(req.Method)
	if !ok {
		return nil
	}
	for _, name := range m.Required {
		// CaptchaAI's GeeTest v4 is method=geetest&version=4 without a
		// challenge.
		if req.Method == "geetest" && name == "challenge" && req.Params["version"] == "4" {
			continue
		}
		if strings.TrimSpace(req.Params[name]) == "" {
			return fieldErr(name, "is required for method %s", req.Method)
		}
	}
	if len(m.OneOf) > 0 {
		for _, name := range m.OneOf {
			if strings.TrimSpace(req.Params[name]) != "" {
				return nil
			}
		}
		return fieldErr(m.OneOf[0], "%s is required for method %s", strings.Join(m.OneOf, " or "), req.Method)
	}
	return nil
}

func validateCommon(p map[string]string) error {
	for name := range p {
		switch name {
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
