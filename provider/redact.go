package provider

import (
	"fmt"
	"net/url"
	"strings"
)

// RedactParams returns a copy of a task's parameters that a page, a log
// line or a CLI table may show: proxy logins and passwords as ***
// (RedactProxy), URLs without their user info, image bodies as their
// length.
func RedactParams(p map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	out := make(map[string]string, len(p))
	for k, v := range p {
		switch {
		case k == "proxy":
			v = RedactProxy(v)
		case k == "body" || k == "file":
			v = fmt.Sprintf("<%d characters of base64>", len(v))
		case strings.Contains(v, "@"):
			if u, err := url.Parse(v); err == nil && u.User != nil {
				v = u.Redacted()
			} else {
				v = RedactText(v)
			}
		}
		out[k] = v
	}
	return out
}

// RedactText hides credentials in free text: each word holding an '@' is
// treated as a proxy or URL with a login.
func RedactText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	words := strings.Split(s, " ")
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = RedactProxy(w)
		}
	}
	return strings.Join(words, " ")
}
