package dashboard_test

import (
	"strings"
	"testing"

	"github.com/captchafsm/captchafsm/provider"
)

// FuzzRedactProxy: a proxy's password never survives RedactParams, whether
// the proxy is a parameter or a word of a history's detail.
func FuzzRedactProxy(f *testing.F) {
	f.Add("user", "pa55word", "203.0.113.7:3128", "http://")
	f.Add("scraper", "s3cret:with:colons", "[2001:db8::1]:8080", "")
	f.Add("a", "p@ss", "h:1", "socks5://")
	f.Fuzz(func(t *testing.T, login, pass, hostport, scheme string) {
		// Passwords worth hiding: long enough not to occur by chance in the
		// rest, and free of the separators a proxy string cannot hold.
		if len(pass) < 6 || strings.ContainsAny(pass, "@ \t\r\n*") || strings.ContainsAny(hostport, "@ \t\r\n") ||
			strings.ContainsAny(login, "@ \t\r\n") || strings.Contains(scheme+login+hostport, pass) {
			t.Skip()
		}
		proxy := scheme + login + ":" + pass + "@" + hostport
		got := provider.RedactParams(map[string]string{"proxy": proxy})["proxy"]
		if strings.Contains(got, pass) {
			t.Fatalf("provider.RedactParams(%q) = %q keeps the password", proxy, got)
		}
		text := provider.RedactText("dial " + proxy + " failed")
		if strings.Contains(text, pass) {
			t.Fatalf("RedactText kept the password: %q", text)
		}
	})
}
