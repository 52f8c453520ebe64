package providersim_test

import (
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// A bot's first solve against the simulator, in process: submit one
// reCAPTCHA, then poll every 5 s until the token is ready. The clock is
// injected, so the example runs instantly and prints the same every time.
func Example() {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	sim := providersim.New(providersim.Config{
		Seed: 1,
		Now:  func() time.Time { return now },
	})
	client := sim.Client()
	const key = "0123456789abcdef0123456789abcdef"

	get := func(u string, q url.Values) string {
		resp, err := client.PostForm(providersim.InProcessURL+u, q)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	answer := get("/in.php", url.Values{"key": {key}, "method": {"userrecaptcha"},
		"googlekey": {"6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-"}, "pageurl": {"https://example.com/login"}})
	fmt.Println("in.php:", answer)
	id := answer[len("OK|"):]

	start := now
	for {
		now = now.Add(5 * time.Second)
		answer = get("/res.php", url.Values{"key": {key}, "action": {"get"}, "id": {id}})
		if answer != "CAPCHA_NOT_READY" {
			break
		}
	}
	fmt.Printf("ready after %v: %.20s...\n", now.Sub(start), answer)
	fmt.Println("balance:", get("/res.php", url.Values{"key": {key}, "action": {"getbalance"}}))
	l := sim.Ledger()
	fmt.Println("charged:", l.Charged(), "polls:", l.Requests[providersim.KindPoll])
	// Output:
	// in.php: OK|70000000001
	// ready after 20s: OK|03AlJ5YnbcPEKWL6W...
	// balance: 99.99701
	// charged: 1 polls: 4
}

// The simulator on a loopback port, for a bot in another process (this is
// what `captchafsm simulate` runs).
func ExampleStart() {
	srv, err := providersim.Start(providersim.Config{Seed: 1}, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/res.php?action=getbalance&json=1&key=0123456789abcdef0123456789abcdef")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))

	_, err = providersim.Start(providersim.Config{}, "0.0.0.0:8080")
	fmt.Println(err)
	// Output:
	// {"status":1,"request":"100"}
	// providersim: address "0.0.0.0:8080" is not a loopback address: the simulator listens on 127.0.0.1, ::1 or localhost only
}

func ExampleParseMix() {
	mix, err := providersim.ParseMix([]byte(`{"submit": {"ERROR_NO_SLOT_AVAILABLE": 0.2}}`))
	fmt.Println(mix.Submit, mix.Poll, err)
	_, err = providersim.ParseMix([]byte(`{"poll": {"ERROR_CAPTCHA_UNSOLVABLE": 1.5}}`))
	fmt.Println(err)
	// Output:
	// map[ERROR_NO_SLOT_AVAILABLE:0.2] map[ERROR_CAPTCHA_UNSOLVABLE:0.01] <nil>
	// providersim: mix: poll["ERROR_CAPTCHA_UNSOLVABLE"]: probability 1.5 is outside 0..1
}
