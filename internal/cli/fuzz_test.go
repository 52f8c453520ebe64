package cli

import (
	"strings"
	"testing"

	"github.com/captchafsm/captchafsm/provider"
)

// FuzzReadTasks: whatever a --from file holds, readTasks either returns
// requests that pass the provider's validation or one line naming the file
// and the line at fault; it never panics.
func FuzzReadTasks(f *testing.F) {
	f.Add(`{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"},"ref":"a"}`)
	f.Add(`{"method":"userrecaptcha","params":{"googlekey":"6Le","pageurl":"https://a.example","invisible":true}}` + "\n\n" + `{"method":"x"}`)
	f.Add(`{"method":"x","ref":"a"}` + "\n" + `{"method":"y","ref":"a"}`)
	f.Add(`{"method": 5}`)
	f.Add(`{"method":"x","params":{"proxy":"u:p@h:1","proxytype":"HTTP"}}`)
	f.Add("\x00\xff")
	f.Fuzz(func(t *testing.T, data string) {
		reqs, err := readTasks("f", strings.NewReader(data))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "--from f: ") {
				t.Fatalf("error does not name the file: %q", msg)
			}
			if strings.Contains(oneLine(msg), "u:p@") {
				t.Fatalf("error repeats a proxy password: %q", msg)
			}
			return
		}
		if len(reqs) == 0 {
			t.Fatal("no error and no tasks")
		}
		refs := map[string]bool{}
		for _, r := range reqs {
			if err := provider.Validate(provider.Request{Method: r.Method, Params: r.Params}); err != nil {
				t.Fatalf("accepted a request the provider refuses: %v", err)
			}
			if r.Ref != "" && refs[r.Ref] {
				t.Fatalf("accepted ref %q twice", r.Ref)
			}
			refs[r.Ref] = true
		}
	})
}

// FuzzParseAge: prune's --older-than never panics and never gives a
// non-positive age without an error.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"30d", "1d12h", "90m", "0d", "99999999999999999999d", "-1d", "d", "1d-2h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseAge(s)
		if err == nil && d <= 0 {
			t.Fatalf("parseAge(%q) = %v without an error", s, d)
		}
	})
}
