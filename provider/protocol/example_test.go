package protocol_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

// tinyBackend accepts any well-formed key and solves every task at once.
type tinyBackend struct{ next int64 }

func (b *tinyBackend) Admit(context.Context, *protocol.Request) error { return nil }
func (b *tinyBackend) Authenticate(context.Context, *protocol.Request) (string, error) {
	return "me", nil
}
func (b *tinyBackend) Submit(_ context.Context, _ *protocol.Request, t protocol.Task) (int64, error) {
	b.next++
	return b.next, nil
}
func (b *tinyBackend) Results(_ context.Context, _ *protocol.Request, ids []int64) ([]protocol.Result, error) {
	out := make([]protocol.Result, len(ids))
	for i, id := range ids {
		if id > b.next {
			out[i] = protocol.Result{Code: "ERROR_WRONG_CAPTCHA_ID"}
		} else {
			out[i] = protocol.Result{Token: fmt.Sprintf("token-%d", id)}
		}
	}
	return out, nil
}
func (b *tinyBackend) Cost(context.Context, *protocol.Request, int64) (protocol.Result, error) {
	return protocol.Result{Code: "CAPCHA_NOT_READY"}, nil
}
func (b *tinyBackend) Balance(context.Context, *protocol.Request) (string, error) { return "10", nil }
func (b *tinyBackend) Report(context.Context, *protocol.Request, int64, bool) error {
	return nil
}
func (b *tinyBackend) AddPingback(context.Context, *protocol.Request, string) error {
	return &protocol.Error{Code: "ERROR_BAD_PARAMETERS", Text: "no pingbacks here"}
}
func (b *tinyBackend) Pingbacks(context.Context, *protocol.Request) ([]string, error) {
	return nil, nil
}
func (b *tinyBackend) DeletePingback(context.Context, *protocol.Request, string) error { return nil }

func Example() {
	srv := httptest.NewServer(protocol.NewHandler(&tinyBackend{}, nil))
	defer srv.Close()
	key := "0123456789abcdef0123456789abcdef"
	call := func(endpoint, query, ctype, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+endpoint+"?"+query, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(string(b))
	}
	// The official JavaScript client's shape: a JSON body.
	call("in.php", "", "application/json", `{"key":"`+key+`","method":"hcaptcha","sitekey":"k","pageurl":"https://example.com","json":1}`)
	// A plain form, and a misspelt method.
	call("in.php", url.Values{"key": {key}, "method": {"hcapcha"}, "json": {"1"}}.Encode(), "", "")
	call("res.php", url.Values{"key": {key}, "action": {"get"}, "ids": {"1,2,x"}}.Encode(), "", "")
	call("res.php", url.Values{"key": {"nope"}, "action": {"getbalance"}}.Encode(), "", "")
	// Output:
	// {"status":1,"request":"1"}
	// {"status":0,"request":"ERROR_NO_SUCH_METHOD","error_text":"method \"hcapcha\" is not a method of the API; did you mean hcaptcha?"}
	// token-1|ERROR_WRONG_CAPTCHA_ID|ERROR_WRONG_ID_FORMAT
	// ERROR_WRONG_USER_KEY
}
