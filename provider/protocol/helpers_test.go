package protocol_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

const testKey = "0123456789abcdef0123456789abcdef"

// fake is a Backend that records what it is asked and answers what the
// test sets.
type fake struct {
	mu    sync.Mutex
	calls []string
	tasks []protocol.Task
	reqs  []*protocol.Request

	admit     error
	auth      error
	submit    error
	results   func(ids []int64) ([]protocol.Result, error)
	cost      protocol.Result
	balance   string
	report    error
	pingbacks []string
}

func (f *fake) note(call string, r *protocol.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	f.reqs = append(f.reqs, r)
}

func (f *fake) Admit(_ context.Context, r *protocol.Request) error {
	f.note("admit", r)
	return f.admit
}

func (f *fake) Authenticate(_ context.Context, r *protocol.Request) (string, error) {
	f.note("auth", r)
	if f.auth != nil {
		return "", f.auth
	}
	return "alice", nil
}

func (f *fake) Submit(_ context.Context, r *protocol.Request, t protocol.Task) (int64, error) {
	f.note("submit", r)
	f.mu.Lock()
	f.tasks = append(f.tasks, t)
	f.mu.Unlock()
	if f.submit != nil {
		return 0, f.submit
	}
	return 70000000001, nil
}

func (f *fake) Results(_ context.Context, r *protocol.Request, ids []int64) ([]protocol.Result, error) {
	f.note("results", r)
	if f.results != nil {
		return f.results(ids)
	}
	out := make([]protocol.Result, len(ids))
	for i := range ids {
		out[i] = protocol.Result{Code: "CAPCHA_NOT_READY"}
	}
	return out, nil
}

func (f *fake) Cost(_ context.Context, r *protocol.Request, _ int64) (protocol.Result, error) {
	f.note("cost", r)
	return f.cost, nil
}

func (f *fake) Balance(_ context.Context, r *protocol.Request) (string, error) {
	f.note("balance", r)
	return f.balance, nil
}

func (f *fake) Report(_ context.Context, r *protocol.Request, _ int64, good bool) error {
	if good {
		f.note("reportgood", r)
	} else {
		f.note("reportbad", r)
	}
	return f.report
}

func (f *fake) AddPingback(_ context.Context, r *protocol.Request, addr string) error {
	f.note("add_pingback", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pingbacks = append(f.pingbacks, addr)
	return nil
}

func (f *fake) Pingbacks(_ context.Context, r *protocol.Request) ([]string, error) {
	f.note("get_pingback", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pingbacks...), nil
}

func (f *fake) DeletePingback(_ context.Context, r *protocol.Request, addr string) error {
	f.note("del_pingback", r)
	if addr == "all" {
		f.pingbacks = nil
		return nil
	}
	return &protocol.Error{Code: "ERROR_BAD_PARAMETERS", Text: "not registered"}
}

var _ protocol.Backend = (*fake)(nil)

func (f *fake) lastTask(t *testing.T) protocol.Task {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.tasks, "no task reached the backend")
	return f.tasks[len(f.tasks)-1]
}

func (f *fake) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// reply is what a client received.
type reply struct {
	status int
	header http.Header
	body   string
}

// json decodes a JSON answer into a map.
func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &m), r.body)
	return m
}

func do(t *testing.T, h http.Handler, req *http.Request) reply {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return reply{status: res.StatusCode, header: res.Header, body: string(b)}
}

func form(kv ...string) url.Values {
	q := url.Values{"key": {testKey}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func postForm(path string, q url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://sim.test"+path, strings.NewReader(q.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func postJSON(path, contentType string, body any, query url.Values) *http.Request {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	u := "http://sim.test" + path
	if query != nil {
		u += "?" + query.Encode()
	}
	r := httptest.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func multipartReq(t *testing.T, q url.Values, files map[string][]byte) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range q {
		require.NoError(t, w.WriteField(k, vs[0]))
	}
	for name, data := range files {
		fw, err := w.CreateFormFile(name, name+".png")
		require.NoError(t, err)
		_, err = fw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	r := httptest.NewRequest(http.MethodPost, "http://sim.test/in.php", &buf)
	r.Header.Set("Content-Type", w.FormDataContentType())
	return r
}

// pngOf is a stand-in PNG of n bytes: the protocol checks the signature
// and the size only.
func pngOf(n int) []byte {
	b := bytes.Repeat([]byte{0x42}, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

var errBoom = errors.New("disk on fire at /var/secret/path")
