package captchafsm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"

	"github.com/captchafsm/captchafsm"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// Example is the README's: a bot that opens its file with one call and
// solves a reCAPTCHA, against the simulator (sped up a hundredfold: the
// example runs in a fraction of a second).
func Example() {
	dir, err := os.MkdirTemp("", "captchafsm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bot(filepath.Join(dir, "bot.db"))
	// Output:
	// Done login-42 true
}

// The README shows bot between the markers; TestReadmeExample keeps the
// two the same.

// README:begin
func bot(path string) {
	ctx := context.Background()
	// Open creates the file (0600, locked) or resumes its unfinished tasks.
	// Here the simulator answers: no key, no network, 100× faster. Without
	// it the key comes from CAPTCHAFSM_API_KEY and the requests go to
	// CaptchaAI (or to CAPTCHAFSM_API_URL).
	solver, err := captchafsm.Open(ctx, path, captchafsm.Options{
		Simulator: &providersim.Config{Speed: 100},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer solver.Close()

	req := captchafsm.RecaptchaV2{
		SiteKey: "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		PageURL: "https://example.com/login",
	}.Request()
	req.Ref = "login-42" // optional: your name for the task, to collect it by
	res, err := solver.Solve(ctx, req)
	var te *captchafsm.TaskError
	switch {
	case err == nil:
		fmt.Println(res.State, res.Ref, res.Token != "")
	case errors.Is(err, captchafsm.ErrNeedsAccountFix):
		fmt.Println("a person must fix the account, then call solver.AccountFixed:", err)
	case errors.As(err, &te):
		fmt.Printf("task %s ended %s with %s (%s)\n", te.ID, te.State, te.Code, te.Class)
	default:
		log.Fatal(err) // bad input: nothing was sent
	}
}

// README:end

// show prints a request's method and parameters, sorted.
func show(req captchafsm.Request) {
	names := make([]string, 0, len(req.Params))
	for k := range req.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println("method", req.Method)
	for _, k := range names {
		fmt.Printf("%s=%.40s\n", k, req.Params[k])
	}
}

func ExampleRecaptchaV2() {
	show(captchafsm.RecaptchaV2{
		SiteKey:   "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		PageURL:   "https://example.com/login",
		Invisible: true,
		Proxy:     captchafsm.Proxy{Type: "HTTP", Address: "user:pass@10.0.0.1:3128"},
	}.Request())
	// Output:
	// method userrecaptcha
	// googlekey=6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-
	// invisible=1
	// pageurl=https://example.com/login
	// proxy=user:pass@10.0.0.1:3128
	// proxytype=HTTP
}

func ExampleRecaptchaV3() {
	show(captchafsm.RecaptchaV3{
		SiteKey:  "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		PageURL:  "https://example.com/login",
		Action:   "login",
		MinScore: 0.7,
	}.Request())
	// Output:
	// method userrecaptcha
	// action=login
	// googlekey=6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-
	// min_score=0.7
	// pageurl=https://example.com/login
	// version=v3
}

func ExampleRecaptchaEnterprise() {
	show(captchafsm.RecaptchaEnterprise{
		SiteKey: "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-",
		PageURL: "https://example.com/checkout",
		DataS:   "2JvUXHNTnZl1Jb6WEvbDyB",
	}.Request())
	// Output:
	// method userrecaptcha
	// data-s=2JvUXHNTnZl1Jb6WEvbDyB
	// enterprise=1
	// googlekey=6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-
	// pageurl=https://example.com/checkout
}

func ExampleHCaptcha() {
	show(captchafsm.HCaptcha{
		SiteKey: "a5f74b19-9e45-40e0-b45d-47ff91b7a6c2",
		PageURL: "https://example.com/signup",
	}.Request())
	// Output:
	// method hcaptcha
	// pageurl=https://example.com/signup
	// sitekey=a5f74b19-9e45-40e0-b45d-47ff91b7a6c2
}

func ExampleTurnstile() {
	show(captchafsm.Turnstile{
		SiteKey: "0x4AAAAAAAC3DHQFLr1GavRN",
		PageURL: "https://example.com/",
		Action:  "login",
	}.Request())
	// Output:
	// method turnstile
	// action=login
	// pageurl=https://example.com/
	// sitekey=0x4AAAAAAAC3DHQFLr1GavRN
}

func ExampleFunCaptcha() {
	show(captchafsm.FunCaptcha{
		PublicKey: "69A21A01-CC7B-B9C6-0F9A-E7FA06677FFC",
		PageURL:   "https://example.com/",
		SURL:      "https://client-api.arkoselabs.com",
	}.Request())
	// Output:
	// method funcaptcha
	// pageurl=https://example.com/
	// publickey=69A21A01-CC7B-B9C6-0F9A-E7FA06677FFC
	// surl=https://client-api.arkoselabs.com
}

func ExampleGeeTest() {
	show(captchafsm.GeeTest{
		GT:        "81388ea1fc187e0c335c0a8907ff2625",
		Challenge: "12345678abc90123d45678ef90123a456b",
		PageURL:   "https://example.com/",
	}.Request())
	// Output:
	// method geetest
	// challenge=12345678abc90123d45678ef90123a456b
	// gt=81388ea1fc187e0c335c0a8907ff2625
	// pageurl=https://example.com/
}

func ExampleGeeTestV4() {
	show(captchafsm.GeeTestV4{
		CaptchaID: "e392e1d7fd421dc63325744d5a2b9c73",
		PageURL:   "https://example.com/",
	}.Request())
	// Output:
	// method geetest_v4
	// captcha_id=e392e1d7fd421dc63325744d5a2b9c73
	// pageurl=https://example.com/
}

// ExampleImageFile reads an image captcha from a file and solves it
// against the simulator.
func ExampleImageFile() {
	dir, err := os.MkdirTemp("", "captchafsm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "captcha.png")
	if err := os.WriteFile(file, png(600), 0o600); err != nil {
		log.Fatal(err)
	}

	img, err := captchafsm.ImageFile(file)
	if err != nil {
		log.Fatal(err)
	}
	img.Numeric = 1 // digits only
	req := img.Request()
	fmt.Println(req.Method, len(req.Params["body"]), req.Params["numeric"])

	ctx := context.Background()
	solver, err := captchafsm.Open(ctx, filepath.Join(dir, "bot.db"), captchafsm.Options{
		Simulator: &providersim.Config{Speed: 1000, Mix: providersim.NoErrors()},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer solver.Close()
	res, err := solver.Solve(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.State, res.Token != "")
	// Output:
	// base64 800 1
	// Done true
}
