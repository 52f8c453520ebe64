package provider_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

// faults are the ways a server can fail to give an API answer.
var faults = []struct {
	name      string
	h         http.HandlerFunc
	status    int  // want TransportError.Status
	malformed bool // want errors.Is(err, ErrMalformed)
	timeout   bool // want errors.Is(err, context.DeadlineExceeded)
}{
	{name: "500", h: func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "OK|1") // a 5xx body is never trusted
	}, status: 500},
	{name: "html 502", h: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
	}, status: 502},
	{name: "html 200", h: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>Cloudflare says wait</body></html>")
	}, malformed: true},
	{name: "redirect", h: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/"+r.URL.RawQuery, http.StatusFound)
	}, status: 302},
	{name: "dropped connection", h: func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}},
	{name: "reset connection", h: func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // close with RST
			}
			conn.Close()
		}
	}},
	{name: "truncated body", h: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "200")
		io.WriteString(w, `{"status":1,"requ`)
	}},
	{name: "truncated json", h: func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"status":1,"request":"12`)
	}, malformed: true},
	{name: "empty body", h: func(http.ResponseWriter, *http.Request) {}, malformed: true},
	{name: "oversized body", h: func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "OK|"+strings.Repeat("7", 300))
	}, malformed: true},
	{name: "invalid json", h: func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"status":1,"request":"1"}}`)
	}, malformed: true},
	{name: "slow answer", h: func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the client gave up
	}, timeout: true},
}

// TestTransportFaults: every fault is a *TransportError, possibly charged
// on a submit (the server read the request), never on a poll, and the key
// appears nowhere in it.
func TestTransportFaults(t *testing.T) {
	small := func(c *provider.Config) {
		c.MaxBody = 256
		shortTimeout(c)
	}
	for _, fl := range faults {
		t.Run(fl.name, func(t *testing.T) {
			f, c := newFake(t, fl.h, small)
			calls := map[string]func() error{
				"submit": func() error { _, err := c.Submit(context.Background(), recaptcha()); return err },
				"submit post": func() error {
					_, err := c.Submit(context.Background(), provider.Request{Method: "post", Params: map[string]string{"body": b64(image("png", 4000))}})
					return err
				},
				"poll":       func() error { _, err := c.Poll(context.Background(), []string{"1"}); return err },
				"poll batch": func() error { _, err := c.Poll(context.Background(), []string{"1", "2"}); return err },
				"cost":       func() error { _, _, err := c.Cost(context.Background(), "1"); return err },
				"balance":    func() error { _, err := c.Balance(context.Background()); return err },
				"report":     func() error { return c.Report(context.Background(), "1", true) },
			}
			for name, call := range calls {
				before := f.count()
				err := call()
				require.Error(t, err, name)
				assert.Equal(t, before+1, f.count(), "%s: exactly one request, no hidden retry", name)
				var te *provider.TransportError
				require.ErrorAs(t, err, &te, "%s: %v", name, err)
				submit := strings.HasPrefix(name, "submit")
				wantEndpoint := provider.EndpointRes
				if submit {
					wantEndpoint = provider.EndpointIn
				}
				assert.Equal(t, wantEndpoint, te.Endpoint, name)
				assert.Equal(t, submit, te.PossiblyCharged, "%s: %v", name, err)
				assert.Equal(t, fl.status, te.Status, "%s: %v", name, err)
				if fl.malformed {
					assert.ErrorIs(t, err, provider.ErrMalformed, name)
				}
				if fl.timeout {
					assert.ErrorIs(t, err, context.DeadlineExceeded, name)
					assert.Contains(t, err.Error(), "timeout after 50ms", name)
				}
				var ae *provider.APIError
				assert.False(t, errors.As(err, &ae), name)
				assert.True(t, strings.HasPrefix(err.Error(), "provider: "+wantEndpoint+": transport: "), err.Error())
				noKey(t, err)
			}
		})
	}
}

// TestRefusedIsNotCharged: a submit that never reached a server cannot
// have been charged.
func TestRefusedIsNotCharged(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	c, err := provider.New(provider.Config{BaseURL: base, Key: testKey})
	require.NoError(t, err)
	_, err = c.Submit(context.Background(), recaptcha())
	var te *provider.TransportError
	require.ErrorAs(t, err, &te)
	assert.False(t, te.PossiblyCharged, err.Error())
	assert.Zero(t, te.Status)
	noKey(t, err)
	_, err = c.Poll(context.Background(), []string{"1"})
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), base+"/res.php", "the URL is kept, without its query")
	assert.NotContains(t, err.Error(), "?")
	noKey(t, err)
}

// leakyTransport fails with an error quoting the whole request, as a
// careless RoundTripper or proxy library might.
type leakyTransport struct{}

func (leakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body := ""
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
	}
	return nil, fmt.Errorf("cannot send %s %s", r.URL, body)
}

// echoKey answers a code that quotes the request's key.
func echoKey(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	io.WriteString(w, "ERROR_BAD_KEY_"+strings.ToUpper(r.Form.Get("key")))
}

func TestKeyNeverLeaks(t *testing.T) {
	var errs []error
	collect := func(err error) {
		t.Helper()
		require.Error(t, err)
		errs = append(errs, err)
	}

	// A transport whose errors quote the URL and the body.
	c, err := provider.New(provider.Config{BaseURL: "http://127.0.0.1:1", Key: testKey, HTTPClient: &http.Client{Transport: leakyTransport{}}})
	require.NoError(t, err)
	_, err = c.Submit(context.Background(), recaptcha())
	collect(err)
	_, err = c.Poll(context.Background(), []string{"1", "2"})
	collect(err)
	_, err = c.Balance(context.Background())
	collect(err)
	var te *provider.TransportError
	require.ErrorAs(t, errs[0], &te)
	assert.Contains(t, errs[0].Error(), "***", "the quoted key is replaced")
	var ue *url.Error
	assert.ErrorAs(t, errs[0], &ue, "the redacted error keeps its chain")

	// A server whose codes quote the key.
	_, c = newFake(t, echoKey)
	_, err = c.Submit(context.Background(), recaptcha())
	collect(err)
	_, err = c.Poll(context.Background(), []string{"1", "2"})
	collect(err)
	_, err = c.Balance(context.Background())
	collect(err)
	// A task's own code is an Answer, scrubbed too.
	ans, err := c.Poll(context.Background(), []string{"1"})
	require.NoError(t, err)
	require.Len(t, ans, 1)
	assert.Equal(t, "ERROR_BAD_KEY_***", ans[0].Code)

	// A server that redirects res.php's query elsewhere.
	_, c = newFake(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved?"+r.URL.RawQuery, http.StatusMovedPermanently)
	})
	_, err = c.Poll(context.Background(), []string{"1"})
	collect(err)
	// The same through a client that follows redirects (10 times, then fails).
	f, _ := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/res.php?"+r.URL.RawQuery, http.StatusFound)
	})
	c, err = provider.New(provider.Config{BaseURL: f.srv.URL, Key: testKey, HTTPClient: &http.Client{}})
	require.NoError(t, err)
	_, err = c.Poll(context.Background(), []string{"1"})
	collect(err)

	// Every fault, through every call.
	for _, fl := range faults {
		_, c := newFake(t, fl.h, func(c *provider.Config) { c.MaxBody = 256; shortTimeout(c) })
		_, err := c.Submit(context.Background(), recaptcha())
		collect(err)
		_, err = c.Poll(context.Background(), []string{"1"})
		collect(err)
		_, _, err = c.Cost(context.Background(), "1")
		collect(err)
	}

	// Invalid configs and requests.
	_, err = provider.New(provider.Config{BaseURL: "https://x.test/?key=" + testKey, Key: testKey})
	collect(err)
	_, err = provider.New(provider.Config{BaseURL: "https://x.test", Key: testKey + "0"})
	collect(err)
	collect(provider.Validate(with(recaptcha(), "key", testKey)))
	collect(provider.Validate(with(recaptcha(), "pageurl", "x?key="+testKey)))

	for _, err := range errs {
		noKey(t, err)
	}
	assert.GreaterOrEqual(t, len(errs), 3*len(faults)+10)
}
