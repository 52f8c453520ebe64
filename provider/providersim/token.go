package providersim

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

// Token alphabets: neither holds '|' (the batch separator), and no prefix
// starts with "ERROR" or "CAPCHA_", so a token never looks like a code.
const (
	textAlphabet  = "abcdefghjkmnpqrstuvwxyz23456789"
	tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	tokenLength   = 64
)

// splitmix64 is a tiny deterministic generator: a token is derived from the
// seed and the task id when asked for, so tasks keep no token in memory.
type splitmix64 uint64

func (x *splitmix64) next() uint64 {
	*x += 0x9e3779b97f4a7c15
	z := uint64(*x)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// token returns the answer of task id solved by method: the text of an image
// (5–7 lower-case characters), or a long token with a method-like prefix.
func (s *Sim) token(id int64, method string) string {
	g := splitmix64(uint64(s.seed)*0x2545f4914f6cdd1d ^ uint64(id))
	switch method {
	case "post", "base64":
		n := 5 + int(g.next()%3)
		b := make([]byte, n)
		for i := range b {
			b[i] = textAlphabet[g.next()%uint64(len(textAlphabet))]
		}
		return string(b)
	}
	prefix := "sim_"
	switch method {
	case "userrecaptcha":
		prefix = "03A"
	case "hcaptcha":
		prefix = "P1_"
	case "turnstile":
		prefix = "0."
	case "funcaptcha":
		prefix = "fc_"
	}
	b := make([]byte, len(prefix), len(prefix)+tokenLength)
	copy(b, prefix)
	for len(b) < cap(b) {
		v := g.next()
		for i := 0; i < 10 && len(b) < cap(b); i++ {
			b = append(b, tokenAlphabet[v&63])
			v >>= 6
		}
	}
	return string(b)
}

// answer is the result of solved task id: a token, or for GeeTest the
// fields a client splits, in the provider's two shapes — CaptchaAI's text
// "challenge:…,validate:…,seccode:…" and 2captcha's JSON object
// {"geetest_challenge":…,"geetest_validate":…,"geetest_seccode":…}; v4's
// fields are captcha_id, lot_number, pass_token, gen_time and
// captcha_output in both.
func (s *Sim) answer(id int64, method string, flags uint8) protocol.Result {
	g := splitmix64(uint64(s.seed)*0x9e3779b97f4a7c15 ^ uint64(id) ^ 0x6765657465737400)
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[g.next()&15]
		}
		return string(b)
	}
	var fields [][2]string
	switch {
	case method == "geetest" && flags&flagGeetestV4 == 0:
		challenge := hex(32)
		fields = [][2]string{
			{"challenge", challenge},
			{"validate", hex(32)},
			// The real seccode ends "|jordan"; '|' would break a batched
			// answer, so the simulator leaves it out (docs/protocol.md).
			{"seccode", hex(32) + "_jordan"},
		}
	case method == "geetest_v4", method == "geetest":
		fields = [][2]string{
			{"captcha_id", hex(32)},
			{"lot_number", hex(32)},
			{"pass_token", hex(64)},
			{"gen_time", strconv.FormatInt(1_700_000_000+id%100_000_000, 10)},
			{"captcha_output", s.token(id, method)},
		}
	default:
		return protocol.Result{Token: s.token(id, method)}
	}
	text := make([]string, len(fields))
	obj := make([]string, len(fields))
	for i, f := range fields {
		text[i] = f[0] + ":" + f[1]
		name := f[0]
		if method == "geetest" && flags&flagGeetestV4 == 0 {
			name = "geetest_" + name
		}
		k, _ := json.Marshal(name)
		v, _ := json.Marshal(f[1])
		obj[i] = string(k) + ":" + string(v)
	}
	return protocol.Result{Token: strings.Join(text, ","), JSON: json.RawMessage("{" + strings.Join(obj, ",") + "}")}
}
