package providersim_test

import (
	"strconv"
	"testing"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// BenchmarkSubmitPoll measures one in-process submit and one poll.
func BenchmarkSubmitPoll(b *testing.B) {
	h := newHarness(b, providersim.Config{NoRateRules: true, Balance: 1e9})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := h.recaptcha(strconv.Itoa(i))
		if len(a) > 3 {
			h.res("action", "get", "id", a[3:])
		}
		i++
	}
}
