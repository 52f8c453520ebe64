package protocol_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

// TestParseShapes: every shape of request the clients send gives the same
// parameters (issue 12 point 1).
func TestParseShapes(t *testing.T) {
	img := base64.StdEncoding.EncodeToString(pngOf(300))
	want := url.Values{"key": {testKey}, "method": {"base64"}, "body": {img}, "json": {"1"}}
	tests := []struct {
		name string
		req  *http.Request
		want url.Values
	}{
		{"query", httptest.NewRequest(http.MethodGet, "http://s/in.php?"+form("method", "base64", "body", img, "json", "1").Encode(), nil), want},
		{"urlencoded", postForm("/in.php", form("method", "base64", "body", img, "json", "1")), want},
		{"multipart", multipartReq(t, form("method", "base64", "body", img, "json", "1"), nil), want},
		// The official JavaScript client: everything in a JSON body, json
		// as a number.
		{"official client JSON", postJSON("/in.php", "application/json",
			map[string]any{"key": testKey, "method": "base64", "body": img, "json": 1}, nil), want},
		// The community client: key and method in the query, the image as
		// {"body": ...} in a text/plain body (node-fetch's default type).
		{"community client text/plain JSON", postJSON("/in.php", "text/plain;charset=UTF-8",
			map[string]any{"body": img}, form("method", "base64", "json", "1")), want},
		{"JSON without a content type", postJSON("/in.php", "", map[string]any{"key": testKey, "method": "base64", "body": img, "json": true}, nil), want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := protocol.Parse(tt.req, protocol.EndpointIn, 0)
			require.Nil(t, r.Err, "%v", r.Err)
			assert.Equal(t, tt.want, r.Form)
			assert.Equal(t, testKey, r.Key)
			assert.True(t, r.JSON)
			assert.Equal(t, protocol.EndpointIn, r.Endpoint)
		})
	}
}

func TestParseMerge(t *testing.T) {
	// Body over query; within a source, the last value.
	r := httptest.NewRequest(http.MethodPost, "http://s/res.php?action=getbalance&id=1&id=2&json=0",
		strings.NewReader("json=1&id=3&id=4"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "10.1.2.3:5555"
	p := protocol.Parse(r, protocol.EndpointRes, 0)
	require.Nil(t, p.Err)
	assert.Equal(t, "4", p.Form.Get("id"))
	assert.Equal(t, "getbalance", p.Action)
	assert.True(t, p.JSON)
	assert.Equal(t, "10.1.2.3", p.Addr)
	assert.Equal(t, []string{"4"}, p.Form["id"], "one value per name")

	// JSON values: numbers as written, booleans as 1/0, null left out,
	// arrays and objects as compact JSON.
	r = postJSON("/in.php", "application/json", map[string]any{
		"soft_id": 4587, "min_score": 0.3, "invisible": false, "enterprise": true, "proxy": nil,
		"images": []string{"a", "b"}, "data": map[string]any{"blob": "x"}, "header_acao": 1,
	}, url.Values{"proxy": {"1.2.3.4:80"}})
	p = protocol.Parse(r, protocol.EndpointIn, 0)
	require.Nil(t, p.Err)
	assert.Equal(t, "4587", p.Form.Get("soft_id"))
	assert.Equal(t, "0.3", p.Form.Get("min_score"))
	assert.Equal(t, "0", p.Form.Get("invisible"))
	assert.Equal(t, "1", p.Form.Get("enterprise"))
	assert.Equal(t, "1.2.3.4:80", p.Form.Get("proxy"), "null does not erase the query's value")
	assert.Equal(t, `["a","b"]`, p.Form.Get("images"))
	assert.Equal(t, `{"blob":"x"}`, p.Form.Get("data"))
	assert.True(t, p.ACAO)
	assert.False(t, p.JSON)

	// Multipart: the part "file" is the image; other file parts are base64.
	img := pngOf(200)
	r = multipartReq(t, form("method", "post"), map[string][]byte{"file": img, "imginstructions": []byte("hint")})
	p = protocol.Parse(r, protocol.EndpointIn, 0)
	require.Nil(t, p.Err)
	assert.Equal(t, img, p.File)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("hint")), p.Form.Get("imginstructions"))
	assert.Equal(t, "post", p.Form.Get("method"))
}

func TestParseBadBodies(t *testing.T) {
	big := strings.NewReader(strings.Repeat("a", 101))
	tests := []struct {
		name     string
		endpoint string
		ctype    string
		body     *strings.Reader
		code     string
	}{
		{"too big in.php", protocol.EndpointIn, "application/x-www-form-urlencoded", big, "ERROR_TOO_BIG_CAPTCHA_FILESIZE"},
		{"too big res.php", protocol.EndpointRes, "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a", 101)), "ERROR_BAD_PARAMETERS"},
		{"broken multipart", protocol.EndpointIn, "multipart/form-data; boundary=xyz", strings.NewReader("--xyz\r\nnot a part"), "ERROR_UPLOAD"},
		{"multipart without boundary", protocol.EndpointIn, "multipart/form-data", strings.NewReader("x"), "ERROR_UPLOAD"},
		{"bad escape", protocol.EndpointIn, "application/x-www-form-urlencoded", strings.NewReader("key=%zz"), "ERROR_UPLOAD"},
		{"json array", protocol.EndpointIn, "application/json", strings.NewReader(`[1,2]`), "ERROR_UPLOAD"},
		{"json truncated", protocol.EndpointRes, "application/json", strings.NewReader(`{"key":`), "ERROR_BAD_PARAMETERS"},
		{"json trailing", protocol.EndpointIn, "application/json", strings.NewReader(`{"a":1} {"b":2}`), "ERROR_UPLOAD"},
		{"json null", protocol.EndpointIn, "application/json", strings.NewReader(`null`), "ERROR_UPLOAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://s/"+tt.endpoint+"?key="+testKey, tt.body)
			r.Header.Set("Content-Type", tt.ctype)
			p := protocol.Parse(r, tt.endpoint, 100)
			require.NotNil(t, p.Err)
			assert.Equal(t, tt.code, p.Err.Code)
			assert.NotEmpty(t, p.Err.Text)
			assert.Equal(t, testKey, p.Key, "the query survives a bad body")
		})
	}
	// A text/plain body that is not JSON is not read, as PHP does not.
	r := httptest.NewRequest(http.MethodPost, "http://s/in.php?key="+testKey, strings.NewReader("hello"))
	r.Header.Set("Content-Type", "text/plain")
	p := protocol.Parse(r, protocol.EndpointIn, 0)
	assert.Nil(t, p.Err)
	assert.Equal(t, url.Values{"key": {testKey}}, p.Form)
}
