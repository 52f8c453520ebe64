package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/dashboard"
	"github.com/captchafsm/captchafsm/persist/boltstore"
)

const goodToken = "s3cret-dashboard-token"

// storeOnly is a dashboard over an empty store, no engine.
func storeOnly(t *testing.T, token string) http.Handler {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "auth.db"), &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return dashboard.New(dashboard.Config{Store: st, Token: token})
}

func TestNoTokenServesLoopbackHostsOnly(t *testing.T) {
	h := storeOnly(t, "")
	tests := []struct {
		host   string
		status int
	}{
		{"127.0.0.1:8080", 200},
		{"localhost:8080", 200},
		{"LOCALHOST", 200},
		{"[::1]:8080", 200},
		{"127.0.0.53:9", 200},
		{"evil.example:8080", 403}, // DNS rebinding: a name pointing at 127.0.0.1
		{"192.168.1.10:8080", 403},
		{"localhost.evil.example", 403},
	}
	for _, tt := range tests {
		w := do(t, h, "GET", "/api/summary", "", "Host", tt.host)
		assert.Equal(t, tt.status, w.Code, tt.host)
		if tt.status == 403 {
			assert.Contains(t, w.Body.String(), "token", tt.host)
		}
	}
}

func TestBearerToken(t *testing.T) {
	h := storeOnly(t, goodToken)
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"none", "", 401},
		{"right", "Bearer " + goodToken, 200},
		{"scheme in lower case", "bearer " + goodToken, 200},
		{"wrong", "Bearer nope", 401},
		{"prefix of the token", "Bearer " + goodToken[:len(goodToken)-1], 401},
		{"token and more", "Bearer " + goodToken + "x", 401},
		{"empty", "Bearer ", 401},
		{"basic", "Basic " + goodToken, 401},
		{"no scheme", goodToken, 401},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.auth != "" {
			hdr = []string{"Authorization", tt.auth}
		}
		// A token also opens the dashboard on a host that is not loopback.
		w := do(t, h, "GET", "/api/tasks", "", append(hdr, "Host", "dashboard.example:8080")...)
		require.Equal(t, tt.status, w.Code, tt.name)
		if tt.status == 401 {
			assert.Equal(t, `Bearer realm="captchafsm"`, w.Header().Get("WWW-Authenticate"), tt.name)
			assert.Contains(t, decode[map[string]string](t, w.Body.String())["error"], "unauthorized", tt.name)
			assert.NotContains(t, w.Body.String(), goodToken)
		}
	}
	// Everything is behind the token: pages, static files, /metrics.
	for _, path := range []string{"/", "/tasks/x", "/static/style.css", "/metrics", "/favicon.ico"} {
		w := do(t, h, "GET", path, "")
		assert.Equal(t, http.StatusUnauthorized, w.Code, path)
		assert.Contains(t, w.Body.String(), "?token=", "a page says how a browser logs in")
	}
	assert.Equal(t, http.StatusOK, do(t, h, "GET", "/static/style.css", "", "Authorization", "Bearer "+goodToken).Code)
}

func TestTokenLoginSetsCookie(t *testing.T) {
	h := storeOnly(t, goodToken)

	w := do(t, h, "GET", "/?state=Done&token="+goodToken, "")
	require.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, "/?state=Done", w.Header().Get("Location"), "the token leaves the URL")
	cookies := w.Result().Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	assert.Equal(t, dashboard.CookieName, c.Name)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
	assert.Equal(t, "/", c.Path)
	assert.NotContains(t, c.Value, goodToken, "the cookie is derived from the token, not the token")

	w = do(t, h, "GET", "/", "", "Cookie", c.Name+"="+c.Value)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, http.StatusOK, do(t, h, "GET", "/api/summary", "", "Cookie", c.Name+"="+c.Value).Code)

	tampered := c.Value[:len(c.Value)-1] + "0"
	if tampered == c.Value {
		tampered = c.Value[:len(c.Value)-1] + "1"
	}
	assert.Equal(t, http.StatusUnauthorized, do(t, h, "GET", "/", "", "Cookie", c.Name+"="+tampered).Code)
	assert.Equal(t, http.StatusUnauthorized, do(t, h, "GET", "/", "", "Cookie", c.Name+"="+goodToken).Code)

	// A wrong token sets nothing.
	w = do(t, h, "GET", "/?token=wrong", "")
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Empty(t, w.Result().Cookies())

	// Another token gives another session: an old cookie stops working.
	other := storeOnly(t, "another-token")
	assert.Equal(t, http.StatusUnauthorized, do(t, other, "GET", "/", "", "Cookie", c.Name+"="+c.Value).Code)
}

func TestCrossSiteWritesRefused(t *testing.T) {
	h := storeOnly(t, "")
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"a client that is not a browser", nil, 200},
		{"same origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:8080"}, 200},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"other origin", []string{"Origin", "http://evil.example"}, 403},
	}
	for _, tt := range tests {
		w := do(t, h, "POST", "/api/account-fixed", "", tt.hdr...)
		assert.Equal(t, tt.status, w.Code, tt.name)
	}
	// A form of another site cannot submit a task either: no JSON
	// content type without a preflight.
	r := httptest.NewRequest("POST", "/api/tasks", strings.NewReader(`{"method":"post"}`))
	r.Host = "127.0.0.1:8080"
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusUnsupportedMediaType, w.Code)
}

func TestSecurityHeaders(t *testing.T) {
	h := storeOnly(t, "")
	w := do(t, h, "GET", "/", "")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'")
	assert.Contains(t, w.Header().Get("Content-Security-Policy"), "default-src 'none'")
	assert.Equal(t, "same-origin", w.Header().Get("Referrer-Policy"))
}
