package provider_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

// testKey is recognisable in any text it leaks into.
const testKey = "deadbeefcafef00d0123456789abcdef"

// seen is what the fake provider received.
type seen struct {
	Method      string
	Path        string
	Query       url.Values
	Form        url.Values
	ContentType string
	File        []byte
	FileName    string
	FileType    string
}

// fake is an httptest server answering like the provider, recording
// requests.
type fake struct {
	srv  *httptest.Server
	n    atomic.Int64
	mu   sync.Mutex
	reqs []seen
}

func (f *fake) count() int64 { return f.n.Load() }

func (f *fake) last(t *testing.T) seen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.reqs, "no request reached the server")
	return f.reqs[len(f.reqs)-1]
}

// newFake starts a server whose handler h answers after the request has
// been recorded, and a client for it.
func newFake(t *testing.T, h http.HandlerFunc, mod ...func(*provider.Config)) (*fake, *provider.Client) {
	t.Helper()
	f := &fake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		s := seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), ContentType: r.Header.Get("Content-Type")}
		mt, _, _ := mime.ParseMediaType(s.ContentType)
		if mt == "multipart/form-data" {
			if err := r.ParseMultipartForm(1 << 20); err == nil {
				s.Form = url.Values(r.MultipartForm.Value)
				if fh := r.MultipartForm.File["file"]; len(fh) == 1 {
					s.FileName = fh[0].Filename
					s.FileType = fh[0].Header.Get("Content-Type")
					if fr, err := fh[0].Open(); err == nil {
						s.File, _ = io.ReadAll(fr)
						fr.Close()
					}
				}
			}
		} else if err := r.ParseForm(); err == nil {
			s.Form = r.PostForm
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, s)
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	cfg := provider.Config{BaseURL: f.srv.URL, Key: testKey}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := provider.New(cfg)
	require.NoError(t, err)
	return f, c
}

// answer returns a handler that writes body with status 200.
func answer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }
}

// image returns n bytes starting with the magic bytes of kind.
func image(kind string, n int) []byte {
	magic := map[string]string{
		"png":  "\x89PNG\r\n\x1a\n",
		"jpg":  "\xff\xd8\xff\xe0",
		"gif":  "GIF89a",
		"bmp":  "BM",
		"none": "",
	}[kind]
	b := bytes.Repeat([]byte{0x42}, n)
	copy(b, magic)
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func recaptcha() provider.Request {
	return provider.Request{Method: "userrecaptcha", Params: map[string]string{
		"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		"pageurl":   "https://example.com/login",
	}}
}

// with returns a copy of req with params set ("" deletes).
func with(req provider.Request, kv ...string) provider.Request {
	p := make(map[string]string, len(req.Params))
	for k, v := range req.Params {
		p[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			delete(p, kv[i])
		} else {
			p[kv[i]] = kv[i+1]
		}
	}
	return provider.Request{Method: req.Method, Params: p}
}

// noKey asserts that the key appears in no rendering of err.
func noKey(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		s := sprintf(verb, err)
		require.NotContains(t, s, testKey, "key leaked through %s", verb)
		require.NotContains(t, strings.ToUpper(s), strings.ToUpper(testKey), "key leaked through %s", verb)
	}
}

// shortTimeout sets a small per-request timeout for the tests that wait
// for it.
func shortTimeout(c *provider.Config) { c.Timeout = 50 * time.Millisecond }

func sprintf(verb string, v any) string { return fmt.Sprintf(verb, v) }
