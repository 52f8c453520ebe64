package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/captchafsm/captchafsm/provider"
)

// Example submits a reCAPTCHA task and polls until it is solved, against a
// test server that answers like the provider.
func Example() {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/in.php":
			fmt.Fprint(w, `{"status":1,"request":"2122988149"}`)
		case "/res.php":
			if polls.Add(1) == 1 {
				fmt.Fprint(w, `{"status":0,"request":"CAPCHA_NOT_READY"}`)
				return
			}
			fmt.Fprint(w, `{"status":1,"request":"03AGdBq24PBCbwiDRaS_MJ7Z"}`)
		}
	}))
	defer srv.Close()

	c, err := provider.New(provider.Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	id, err := c.Submit(ctx, provider.Request{Method: "userrecaptcha", Params: map[string]string{
		"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		"pageurl":   "https://example.com/login",
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("submitted:", id)
	for {
		answers, err := c.Poll(ctx, []string{id})
		if err != nil {
			fmt.Println(err)
			return
		}
		a := answers[0]
		if a.Token != "" {
			fmt.Println("token:", a.Token)
			return
		}
		fmt.Println("code:", a.Code, a.Class) // an engine waits poll_interval here
	}
	// Output:
	// submitted: 2122988149
	// code: CAPCHA_NOT_READY not_ready
	// token: 03AGdBq24PBCbwiDRaS_MJ7Z
}

// ExampleClient_Submit_errors shows the three kinds of error.
func ExampleClient_Submit_errors() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("pageurl") == "https://busy.example/" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ERROR_ZERO_BALANCE")
	}))
	defer srv.Close()
	c, _ := provider.New(provider.Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef"})

	for _, pageurl := range []string{"example.com", "https://example.com/", "https://busy.example/"} {
		_, err := c.Submit(context.Background(), provider.Request{Method: "hcaptcha",
			Params: map[string]string{"sitekey": "10000000-ffff-ffff-ffff-000000000001", "pageurl": pageurl}})
		var ae *provider.APIError
		var te *provider.TransportError
		switch {
		case errors.Is(err, provider.ErrInvalid):
			fmt.Println("fix the request:", err)
		case errors.As(err, &ae):
			fmt.Println("api:", ae.Code, ae.Class)
		case errors.As(err, &te):
			fmt.Println("transport:", te.Status, te.PossiblyCharged)
		}
	}
	// Output:
	// fix the request: provider: pageurl: must be an absolute http(s) URL
	// api: ERROR_ZERO_BALANCE account
	// transport: 502 true
}

func ExampleParseAnswer() {
	for _, body := range []string{`{"status":1,"request":"2122988149"}`, "OK|2122988149", "CAPCHA_NOT_READY", "<html>"} {
		status, request, err := provider.ParseAnswer([]byte(body))
		fmt.Println(status, request, err)
	}
	// Output:
	// 1 2122988149 <nil>
	// 1 2122988149 <nil>
	// 0 CAPCHA_NOT_READY <nil>
	// 0  provider: malformed answer: an HTML page, not an API answer
}

func ExampleParseBatch() {
	answers, _ := provider.ParseBatch("03AGdBq24|CAPCHA_NOT_READY|ERROR_CAPTCHA_UNSOLVABLE", 3)
	for _, a := range answers {
		fmt.Printf("%q %q %q\n", a.Token, a.Code, a.Class)
	}
	// Output:
	// "03AGdBq24" "" ""
	// "" "CAPCHA_NOT_READY" "not_ready"
	// "" "ERROR_CAPTCHA_UNSOLVABLE" "resubmit"
}

func ExampleRedactProxy() {
	fmt.Println(provider.RedactProxy("user:pass@1.2.3.4:8080"))
	// Output: ***:***@1.2.3.4:8080
}
