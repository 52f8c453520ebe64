package providersim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "0123456789abcdef0123456789abcdef"

// png is a minimal stand-in for a PNG image: the simulator checks the
// signature and the size only.
func png(size int) []byte {
	b := bytes.Repeat([]byte{0x42}, size)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

// harness drives a Sim in process, with plain net/http.
type harness struct {
	t   testing.TB
	sim *providersim.Sim
	c   *http.Client
}

func newHarness(t testing.TB, cfg providersim.Config) *harness {
	t.Helper()
	s := providersim.New(cfg)
	return &harness{t: t, sim: s, c: s.Client()}
}

// form builds the parameters of a request: key first, then pairs.
func form(kv ...string) url.Values {
	q := url.Values{"key": {testKey}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// post sends q to path and returns the status and body; transport errors
// fail the test.
func (h *harness) post(path string, q url.Values) (int, string) {
	h.t.Helper()
	status, body, err := h.try(context.Background(), path, q)
	require.NoError(h.t, err)
	return status, body
}

func (h *harness) try(ctx context.Context, path string, q url.Values) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, providersim.InProcessURL+path, strings.NewReader(q.Encode()))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.send(req)
}

func (h *harness) send(req *http.Request) (int, string, error) {
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp.StatusCode, string(b), nil
}

// in sends an in.php request and returns its plain answer.
func (h *harness) in(kv ...string) string {
	h.t.Helper()
	status, body := h.post("/in.php", form(kv...))
	require.Equal(h.t, http.StatusOK, status, body)
	return body
}

// res sends a res.php request and returns its plain answer.
func (h *harness) res(kv ...string) string {
	h.t.Helper()
	status, body := h.post("/res.php", form(kv...))
	require.Equal(h.t, http.StatusOK, status, body)
	return body
}

// recaptcha submits a valid reCAPTCHA task; page makes its content unique.
func (h *harness) recaptcha(page string) string {
	h.t.Helper()
	return h.in("method", "userrecaptcha", "googlekey", "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl", "https://example.com/"+page)
}

// mustID returns the id of an "OK|ID" answer.
func (h *harness) mustID(answer string) string {
	h.t.Helper()
	id, ok := strings.CutPrefix(answer, "OK|")
	require.True(h.t, ok, "want OK|ID, got %q", answer)
	return id
}

// upload sends method=post with a multipart file.
func (h *harness) upload(file []byte, kv ...string) string {
	h.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, vs := range form(append([]string{"method", "post"}, kv...)...) {
		require.NoError(h.t, w.WriteField(k, vs[0]))
	}
	fw, err := w.CreateFormFile("file", "captcha.png")
	require.NoError(h.t, err)
	_, err = fw.Write(file)
	require.NoError(h.t, err)
	require.NoError(h.t, w.Close())
	req, err := http.NewRequest(http.MethodPost, providersim.InProcessURL+"/in.php", &buf)
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	status, body, err := h.send(req)
	require.NoError(h.t, err)
	require.Equal(h.t, http.StatusOK, status)
	return body
}

// jsonAnswer decodes a json=1 answer.
type jsonAnswer struct {
	Status  int    `json:"status"`
	Request string `json:"request"`
	Price   string `json:"price"`
}

func decode(t testing.TB, body string) jsonAnswer {
	t.Helper()
	var a jsonAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &a), body)
	return a
}

// advance moves a synctest bubble's virtual clock forward by d: the
// bubble's timers fire at once when every goroutine in it is blocked. Every
// caller runs inside synctest.Test; no test waits in real time.
func advance(d time.Duration) {
	if d > 0 {
		<-time.After(d)
	}
}
