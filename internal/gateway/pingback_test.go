package gateway_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
)

// TestPingbackTheStoreCannotKeep: a task's pingback URL is kept as a
// label, and labels are at most 4 KiB of UTF-8. A URL beyond that (a long
// one, or one whose query holds a byte that is not UTF-8, as a form's
// %FF decodes to) is refused naming the pingback, with nothing stored:
// it was answered ERROR_INTERNAL "try again", which a client does for
// ever, and logged as a store failure.
func TestPingbackTheStoreCannotKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, opts{})
		for _, pb := range []string{
			"http://127.0.0.1:9/cb?x=" + strings.Repeat("a", persist.MaxLabelsLen),
			"http://127.0.0.1:9/cb?x=\xff",
		} {
			answer := w.in(aliceKey, append(turnstile("pb"), "pingback", pb)...)
			assert.Equal(t, "ERROR_BAD_PARAMETERS", answer, "%.40q", pb)
			a := decode(t, w.in(aliceKey, append(turnstile("pb"), "pingback", pb, "json", "1")...))
			assert.Contains(t, a.ErrorText, "pingback", "%.40q", pb)
		}
		assert.NotContains(t, w.logs.String(), "could not be stored")
		list, err := w.store.List(context.Background(), persist.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, list, "nothing stored")
	})
}
