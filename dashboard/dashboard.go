package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/persist"
)

//go:embed static
var staticFS embed.FS

//go:embed templates/*.html
var templateFS embed.FS

// CookieName is the cookie a browser receives after a ?token= login.
const CookieName = "captchafsm_session"

// Config configures the dashboard. Store is required; every other field's
// zero value means its default.
type Config struct {
	// Engine, when set, takes new tasks (POST /api/tasks) and answers the
	// breaker's state; account-fixed goes through it so that the breaker
	// closes. Without an engine the dashboard shows the store read-only:
	// submits are refused with 503 and account-fixed releases parked tasks
	// in the store for the next engine (engine.ReleaseAccountFix).
	Engine *engine.Engine
	// Store is read for counts, lists and histories.
	Store persist.Store
	// Metrics, when set, is served at /metrics (its own registry).
	Metrics *metrics.Metrics
	// Token, when set, is required on every request: an
	// "Authorization: Bearer <token>" header, or the cookie a browser gets
	// by opening any page with ?token=<token>. Empty means no
	// authentication, and then only loopback host names are served (a
	// guard against DNS rebinding).
	Token string
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
}

// server is the dashboard's handler.
type server struct {
	eng     *engine.Engine
	store   persist.Store
	metrics *metrics.Metrics
	log     *slog.Logger

	tokenHash [sha256.Size]byte // sha256 of the token; zero when none
	session   string            // the cookie's value: derived from the token, never the token
	auth      bool

	csrf  *http.CrossOriginProtection
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the dashboard: the JSON API under /api/, the HTML pages, the
// static files and /metrics. It panics when cfg.Store is nil, as a
// programming error.
func New(cfg Config) http.Handler {
	if cfg.Store == nil {
		panic("dashboard: Config.Store is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &server{eng: cfg.Engine, store: cfg.Store, metrics: cfg.Metrics, log: log,
		csrf: http.NewCrossOriginProtection()}
	if cfg.Token != "" {
		s.auth = true
		s.tokenHash = sha256.Sum256([]byte(cfg.Token))
		mac := sha256.Sum256([]byte("captchafsm dashboard session\x00" + cfg.Token))
		s.session = hex.EncodeToString(mac[:])
	}
	s.pages = parsePages()
	s.routes()
	return s
}

func (s *server) routes() {
	m := http.NewServeMux()
	// The API routes by method itself, so that every error, 404 and 405
	// included, is a JSON object.
	m.Handle("/api/tasks", methods{"GET": s.apiList, "POST": s.apiSubmit})
	m.Handle("/api/tasks/{id}", methods{"GET": s.apiGet})
	m.Handle("/api/tasks/{id}/history", methods{"GET": s.apiHistory})
	m.Handle("/api/summary", methods{"GET": s.apiSummary})
	m.Handle("/api/account-fixed", methods{"POST": s.apiAccountFixed})
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "dashboard: no such endpoint: "+r.URL.Path)
	})

	m.HandleFunc("GET /{$}", s.pageIndex)
	m.HandleFunc("GET /tasks/{id}", s.pageTask)
	m.HandleFunc("POST /account-fixed", s.formAccountFixed)
	m.Handle("GET /static/", http.FileServerFS(staticFS))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	if s.metrics != nil {
		m.Handle("GET /metrics", s.metrics.Handler())
	}
	s.mux = m
}

// methods routes an API path by method; GET also answers HEAD.
type methods map[string]http.HandlerFunc

func (ms methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if h, ok := ms[method]; ok {
		h(w, r)
		return
	}
	allow := make([]string, 0, len(ms))
	for m := range ms {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "dashboard: "+r.Method+" "+r.URL.Path+": method not allowed (allowed: "+strings.Join(allow, ", ")+")")
}

// ServeHTTP checks the host, the origin of writes and the token, then
// routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // a ?token= must not leak to other sites
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

	if !s.auth && !loopbackHost(r.Host) {
		writeProblem(w, r, http.StatusForbidden, "dashboard: host "+r.Host+" is not served without a token: open it through 127.0.0.1 or localhost, or set a token")
		return
	}
	// Writes a browser sends on behalf of another site are refused
	// (Sec-Fetch-Site, else Origin against Host); clients that are not
	// browsers send neither header.
	if err := s.csrf.Check(r); err != nil {
		writeProblem(w, r, http.StatusForbidden, "dashboard: cross-origin request refused")
		return
	}
	if s.auth {
		if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet {
			s.login(w, r, tok)
			return
		}
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="captchafsm"`)
			writeProblem(w, r, http.StatusUnauthorized,
				"dashboard: unauthorized: send Authorization: Bearer <token>, or open /?token=<token> once in a browser")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token or the session cookie. Both compare
// fixed-length digests in constant time, so neither the token's bytes nor
// its length show in the timing.
func (s *server) authorized(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		return s.tokenMatches(strings.TrimSpace(tok))
	}
	if c, err := r.Cookie(CookieName); err == nil {
		got := sha256.Sum256([]byte(c.Value))
		want := sha256.Sum256([]byte(s.session))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	return false
}

func (s *server) tokenMatches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// login answers a GET with ?token=: a good token sets the session cookie
// and redirects to the same URL without the token, so that it stays out of
// the address bar and the history.
func (s *server) login(w http.ResponseWriter, r *http.Request, tok string) {
	if !s.tokenMatches(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="captchafsm"`)
		writeProblem(w, r, http.StatusUnauthorized, "dashboard: unauthorized: wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: s.session, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	u := *r.URL
	q := u.Query()
	q.Del("token")
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

// loopbackHost reports whether a Host header names this machine's
// loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeProblem answers an error as JSON under /api/ and as text elsewhere.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, status, msg)
		return
	}
	http.Error(w, msg, status)
}
