package providersim

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
	case "geetest":
		prefix = "gt3_"
	case "geetest_v4":
		prefix = "gt4_"
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
