package protocol

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/captchafsm/captchafsm/provider"
)

// notParams are the request's parameters that are not the task's.
var notParams = map[string]bool{"key": true, "method": true, "json": true, "header_acao": true, "pingback": true}

// proxyTypes are the accepted values of proxytype.
var proxyTypes = map[string]bool{"HTTP": true, "HTTPS": true, "SOCKS4": true, "SOCKS5": true}

// Check turns an in.php request into a Task, or the code the provider
// answers for it. It is the provider's own checking, more lenient than the
// client's provider.Validate (which also refuses, for example, invisible=false
// that the provider takes): a method it does not document
// (provider.LookupMethod) is ERROR_NO_SUCH_METHOD; a missing or relative
// pageurl ERROR_PAGEURL; a missing googlekey ERROR_WRONG_GOOGLEKEY and a
// malformed one ERROR_GOOGLEKEY; a GeeTest v4 captcha_id that is not 32 hex
// characters ERROR_CAPTCHA_ID; an image under 100 bytes
// ERROR_ZERO_CAPTCHA_FILESIZE, over 100 kB ERROR_TOO_BIG_CAPTCHA_FILESIZE,
// neither PNG, JPEG nor GIF ERROR_IMAGE_TYPE_NOT_SUPPORTED, bad base64
// ERROR_UPLOAD; any other missing, oversized or malformed parameter
// ERROR_BAD_PARAMETERS. Every *Error's Text names the parameter.
func Check(r *Request) (Task, *Error) {
	f := r.Form
	method := f.Get("method")
	if method == "" && f.Get("textcaptcha") != "" {
		method = "textcaptcha" // the provider takes a text question without a method
	}
	if method == "" {
		return Task{}, Errorf("ERROR_BAD_PARAMETERS", "method is required")
	}
	m, ok := provider.LookupMethod(method)
	if !ok {
		text := fmt.Sprintf("method %.40q is not a method of the API", method)
		if s := provider.SuggestMethod(method); s != "" {
			text += "; did you mean " + s + "?"
		}
		return Task{}, &Error{Code: "ERROR_NO_SUCH_METHOD", Text: text}
	}
	t := Task{Method: method, Params: map[string]string{}, Pingback: f.Get("pingback")}
	for k := range f {
		if !notParams[k] {
			t.Params[k] = f.Get(k)
		}
	}
	if len(t.Params) > provider.MaxParams {
		return Task{}, Errorf("ERROR_BAD_PARAMETERS", "%d parameters, at most %d", len(t.Params), provider.MaxParams)
	}
	for _, k := range sortedKeys(t.Params) {
		if n, limit := len(t.Params[k]), provider.MaxValue(k); n > limit {
			code := "ERROR_BAD_PARAMETERS"
			switch k {
			case "pageurl":
				code = "ERROR_PAGEURL"
			case "body":
				code = "ERROR_TOO_BIG_CAPTCHA_FILESIZE"
			}
			return Task{}, Errorf(code, "%.40s is %d bytes, longer than the %d accepted", k, n, limit)
		}
	}
	if t.Pingback != "" && !httpURL(t.Pingback) {
		return Task{}, Errorf("ERROR_BAD_PARAMETERS", "pingback must be an absolute http(s) URL")
	}
	if v, ok := t.Params["proxytype"]; ok && !proxyTypes[strings.ToUpper(v)] {
		return Task{}, Errorf("ERROR_BAD_PARAMETERS", "proxytype must be HTTP, HTTPS, SOCKS4 or SOCKS5")
	}
	switch method {
	case "post", "base64":
		img, e := image(method, r.File, t.Params["body"])
		if e != nil {
			return Task{}, e
		}
		t.Image = img
		t.Params["body"] = base64.StdEncoding.EncodeToString(img)
	}
	if e := required(m, t.Params); e != nil {
		return Task{}, e
	}
	if v, ok := t.Params["pageurl"]; ok && !httpURL(v) {
		return Task{}, Errorf("ERROR_PAGEURL", "pageurl must be an absolute http(s) URL")
	}
	switch {
	case method == "userrecaptcha" && !tokenChars(t.Params["googlekey"]):
		return Task{}, Errorf("ERROR_GOOGLEKEY", "googlekey must be letters, digits, '-' and '_'")
	case method == "geetest_v4" && !hex32(t.Params["captcha_id"]):
		return Task{}, Errorf("ERROR_CAPTCHA_ID", "captcha_id must be the 32 hex characters of the page's GeeTest v4 id")
	case method == "geetest" && t.Params["version"] == "4" && !hex32(t.Params["gt"]):
		return Task{}, Errorf("ERROR_CAPTCHA_ID", "gt must be the 32 hex characters of the page's GeeTest v4 id")
	}
	return t, nil
}

func required(m provider.Method, p map[string]string) *Error {
	for _, name := range m.Required {
		if m.Name == "geetest" && name == "challenge" && p["version"] == "4" {
			continue // CaptchaAI's GeeTest v4: method=geetest&version=4&gt=ID
		}
		if strings.TrimSpace(p[name]) != "" {
			continue
		}
		switch {
		case name == "pageurl":
			return Errorf("ERROR_PAGEURL", "pageurl is required for method %s", m.Name)
		case name == "googlekey":
			return Errorf("ERROR_WRONG_GOOGLEKEY", "googlekey is required for method %s", m.Name)
		}
		return Errorf("ERROR_BAD_PARAMETERS", "%s is required for method %s", name, m.Name)
	}
	if len(m.OneOf) == 0 {
		return nil
	}
	for _, name := range m.OneOf {
		if strings.TrimSpace(p[name]) != "" {
			return nil
		}
	}
	return Errorf("ERROR_BAD_PARAMETERS", "%s is required for method %s", strings.Join(m.OneOf, " or "), m.Name)
}

// image returns the image of a post (the multipart file, or a base64 body
// when there is no file) or base64 task.
func image(method string, file []byte, body string) ([]byte, *Error) {
	img := file
	if method == "base64" || img == nil {
		if strings.TrimSpace(body) == "" {
			return nil, Errorf("ERROR_ZERO_CAPTCHA_FILESIZE", "no image: body (or the file part for method post) is empty")
		}
		var err error
		if img, err = decodeBase64(body); err != nil {
			return nil, Errorf("ERROR_UPLOAD", "body is not valid base64")
		}
	}
	switch {
	case len(img) < provider.MinImageSize:
		return nil, Errorf("ERROR_ZERO_CAPTCHA_FILESIZE", "the image is %d bytes, less than %d", len(img), provider.MinImageSize)
	case len(img) > provider.MaxImageSize:
		return nil, Errorf("ERROR_TOO_BIG_CAPTCHA_FILESIZE", "the image is %d bytes, more than %d", len(img), provider.MaxImageSize)
	case bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")), bytes.HasPrefix(img, []byte{0xFF, 0xD8, 0xFF}),
		bytes.HasPrefix(img, []byte("GIF87a")), bytes.HasPrefix(img, []byte("GIF89a")):
		return img, nil
	}
	return nil, Errorf("ERROR_IMAGE_TYPE_NOT_SUPPORTED", "the image is neither PNG, JPEG nor GIF")
}

// decodeBase64 takes what clients send: line breaks, a data: URI prefix,
// padding or none.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if i := strings.Index(s, ";base64,"); i >= 0 && strings.HasPrefix(s, "data:") {
		s = s[i+len(";base64,"):]
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

func httpURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

func hex32(s string) bool { return wellFormedKey(s) }
