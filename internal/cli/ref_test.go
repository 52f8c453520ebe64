package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

// TestSolveReusedRef: a ref that names a task with another request is
// refused (exit 1, the ref named, nothing sent); the same request attaches
// to the task and prints its token without a request (issue 11, point 6).
func TestSolveReusedRef(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	img := w.file("captcha.png", string(pngBytes(t, 30, 10)))
	first := w.run(withPolicy(w, "solve", "--image", img, "--ref", "img-0")...)
	require.Equal(t, ExitOK, first.code, first.err)
	sent := w.requests()

	r := w.run(withPolicy(w, "solve", "--ref", "img-0", "--method", "turnstile",
		"--param", "sitekey=zzz", "--param", "pageurl=https://other.example")...)
	assert.Equal(t, ExitUsage, r.code, r.err)
	assert.Contains(t, r.err, "img-0")
	assert.Empty(t, r.out, "no token printed")
	assert.Equal(t, sent, w.requests(), "nothing sent")
	require.Len(t, w.tasks(), 1, "nothing stored")

	again := w.run(withPolicy(w, "solve", "--image", img, "--ref", "img-0")...)
	require.Equal(t, ExitOK, again.code, again.err)
	assert.Equal(t, first.out, again.out, "the same request attaches: the same token")
	assert.Equal(t, sent, w.requests(), "an attached, settled task sends nothing")

	h := w.run("history", "img-0")
	require.Equal(t, ExitOK, h.code, h.err)
	assert.Contains(t, h.out, "solved")
	tasks := w.tasks()
	assert.Equal(t, states.Done, tasks[0].State)
}
