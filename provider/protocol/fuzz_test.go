package protocol_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

// FuzzServe: whatever the query, content type and body, the Handler
// answers with one API answer (plain, or valid JSON with json=1), never a
// panic, and only a well-formed key reaches Authenticate.
func FuzzServe(f *testing.F) {
	f.Add("in.php", "key="+testKey+"&method=base64&json=1", "application/json", `{"body":"iVBORw0KGgo="}`)
	f.Add("in.php", "key="+testKey, "text/plain", `{"method":"hcaptcha","sitekey":"k","pageurl":"https://x.test","json":1}`)
	f.Add("res.php", "key="+testKey+"&action=get&ids=1,2,x", "", "")
	f.Add("res.php", "", "application/x-www-form-urlencoded", "key="+testKey+"&action=getbalance&json=1")
	f.Add("in.php", "", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n"+testKey+"\r\n--b--\r\n")
	f.Add("res.php", "json=1&key="+testKey+"&action=get2&id=1", "application/json", `{"action":[1,{"a":null}]}`)
	f.Fuzz(func(t *testing.T, endpoint, query, ctype, body string) {
		if endpoint != "in.php" {
			endpoint = "res.php"
		}
		r := httptest.NewRequest(http.MethodPost, "http://s/"+endpoint, strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ctype)
		fk := &fake{balance: "1", cost: protocol.Result{Token: "t", Price: "1"}}
		h := protocol.NewHandler(fk, &protocol.Options{MaxBody: 4096})
		req, rep := h.Parse(r)
		if rep != nil {
			t.Fatalf("an in.php/res.php POST got a non-API reply %d", rep.Status)
		}
		got := h.Serve(t.Context(), req)
		if got.Status != http.StatusOK || len(got.Codes) == 0 || len(got.Body) == 0 {
			t.Fatalf("reply %d %q codes %v", got.Status, got.Body, got.Codes)
		}
		if req.JSON {
			var v struct {
				Status  *int `json:"status"`
				Request any  `json:"request"`
			}
			if err := json.Unmarshal(got.Body, &v); err != nil || v.Status == nil {
				t.Fatalf("json=1 answer is not a JSON answer: %q", got.Body)
			}
		}
		for i, c := range fk.callList() {
			if c == "auth" && len(fk.reqs[i].Key) != 32 {
				t.Fatalf("a malformed key reached Authenticate")
			}
		}
		if _, err := url.ParseQuery(query); err == nil && req.Form == nil {
			t.Fatal("nil form")
		}
	})
}
