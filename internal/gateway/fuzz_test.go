package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseRef: any ref is read without a panic, and what it reads
// round-trips.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"gw:alice:1700000000000001", "gw::1", "gw:a:b:3", "login-42", "gw:a:-1", "gw:a:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		client, id, ok := ParseRef(ref)
		if !ok {
			return
		}
		if id <= 0 || !nameRE.MatchString(client) {
			t.Fatalf("ParseRef(%q) = %q, %d", ref, client, id)
		}
		if c2, id2, ok2 := ParseRef(Ref(client, id)); !ok2 || c2 != client || id2 != id {
			t.Fatalf("%q does not round-trip", ref)
		}
	})
}

// FuzzShapes: any stored answer gives a plain form without a panic, and a
// JSON form that is valid JSON.
func FuzzShapes(f *testing.F) {
	for _, s := range []string{`{"geetest_challenge":"c","geetest_validate":"v","geetest_seccode":"s"}`,
		"challenge:c,validate:v,seccode:s", "03AGdBq25", `{"a":[1,2],"b":null}`, "{", `{"a":"b"}{`} {
		f.Add("geetest", s)
	}
	f.Fuzz(func(t *testing.T, method, token string) {
		plain, js := shapes(method, token)
		if js != nil && !json.Valid(js) {
			t.Fatalf("shapes(%q) JSON form %q is not valid", token, js)
		}
		if js == nil && plain != token {
			t.Fatalf("shapes(%q) changed a plain answer to %q", token, plain)
		}
		if strings.TrimSpace(token) == "" && js != nil {
			t.Fatalf("an empty answer got a JSON form")
		}
	})
}
