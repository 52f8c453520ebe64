package providersim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/transitions"
)

// FuzzRequest sends arbitrary queries and bodies to in.php and res.php: the
// simulator never panics, and every answer is one a client can classify.
func FuzzRequest(f *testing.F) {
	f.Add(true, "key="+testKey+"&method=userrecaptcha&googlekey=6Le&pageurl=https://e.com", "", "")
	f.Add(true, "key="+testKey+"&json=1", "method=base64&body=iVBORw0KGgo=", "application/x-www-form-urlencoded")
	f.Add(true, "key="+testKey, "--x\r\nContent-Disposition: form-data; name=\"method\"\r\n\r\npost\r\n--x--\r\n", "multipart/form-data; boundary=x")
	f.Add(false, "key="+testKey+"&action=get&ids=70000000001,abc,,5", "", "")
	f.Add(false, "key="+testKey+"&action=get2&id=70000000001&json=1", "", "")
	f.Add(false, "key="+testKey+"&action=reportbad&id=70000000001", "", "")
	f.Add(false, "action=getbalance&key=%zz", "", "")
	f.Fuzz(func(t *testing.T, submit bool, query, body, ctype string) {
		h := newHarness(t, providersim.Config{Seed: 1})
		// One task exists, so polls can find something.
		h.recaptcha("seed")
		path := "/res.php"
		if submit {
			path = "/in.php"
		}
		u, err := url.Parse(providersim.InProcessURL + path)
		if err != nil {
			t.Fatal(err)
		}
		u.RawQuery = query
		req := &http.Request{Method: http.MethodPost, URL: u, Header: http.Header{}, Body: http.NoBody}
		if body != "" {
			req.Body = readCloser{strings.NewReader(body)}
			req.ContentLength = int64(len(body))
		}
		req.Header.Set("Content-Type", ctype)
		status, answer, err := h.send(req)
		if err != nil {
			t.Fatalf("transport error without faults: %v", err)
		}
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		if strings.HasPrefix(answer, "{") {
			var a struct {
				Status  *int    `json:"status"`
				Request *string `json:"request"`
			}
			if err := json.Unmarshal([]byte(answer), &a); err != nil || a.Status == nil || a.Request == nil {
				t.Fatalf("bad JSON answer %q", answer)
			}
			if *a.Status == 0 && !transitions.IsCode(*a.Request) {
				t.Fatalf("status 0 without a code: %q", answer)
			}
			return
		}
		if submit {
			if id, ok := strings.CutPrefix(answer, "OK|"); ok {
				for _, c := range id {
					if c < '0' || c > '9' {
						t.Fatalf("non-numeric id in %q", answer)
					}
				}
				return
			}
			if !transitions.IsCode(answer) || strings.Contains(answer, "|") {
				t.Fatalf("in.php answer %q is neither OK|ID nor a code", answer)
			}
			return
		}
		if answer == "" {
			t.Fatal("empty res.php answer")
		}
		for _, part := range strings.Split(answer, "|") {
			if part == "" {
				t.Fatalf("empty part in %q", answer)
			}
		}
	})
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
