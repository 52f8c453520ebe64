package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

var hcaptchaArgs = []string{"solve", "--method", "hcaptcha", "--param", "sitekey=10000000-ffff", "--param", "pageurl=https://a.example/login"}

func withPolicy(w *world, args ...string) []string { return append(args, "--policy", w.policy) }

func TestSolvePrintsTheToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	r := w.run(withPolicy(w, hcaptchaArgs...)...)
	require.Equal(t, ExitOK, r.code, r.err)
	tasks := w.tasks()
	require.Len(t, tasks, 1)
	assert.Equal(t, states.Done, tasks[0].State)
	assert.Equal(t, tasks[0].Token+"\n", r.out, "stdout is the token alone")
	assert.NotEmpty(t, tasks[0].Token)
}

// TestSolveShowsItsMovesOnATerminal: on a terminal, solve's stderr shows
// its task's moves as they happen (the submit, the accept with the
// provider's id, the polls counted in place, the solve); elsewhere solve is
// silent, and stdout is the token alone either way.
func TestSolveShowsItsMovesOnATerminal(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{true, false} {
		// Solved in 300ms, polled every 10ms: not-ready answers, many.
		w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors(), Speed: 1,
			SolveTime: map[string]providersim.Dist{"hcaptcha": {Min: 300 * time.Millisecond, Max: 300 * time.Millisecond}}})
		w.ttyErr = tty
		r := w.run(withPolicy(w, append(hcaptchaArgs, "--ref", "shown")...)...)
		require.Equal(t, ExitOK, r.code, r.err)
		tasks := w.tasks()
		require.Len(t, tasks, 1)
		assert.Equal(t, tasks[0].Token+"\n", r.out, "stdout is the token alone")
		if !tty {
			assert.Empty(t, r.err, "off a terminal solve is silent")
			continue
		}
		assert.True(t, strings.HasPrefix(r.err, "captchafsm: task "+tasks[0].ID+" (ref shown): hcaptcha, recorded\n"), r.err)
		for _, want := range []string{
			"Submitting → Submitting  submit_sending",
			"Submitting → Polling  submit_accepted  provider id " + tasks[0].ProviderID,
			"Polling → Done  solved",
		} {
			assert.Contains(t, r.err, want)
		}
		require.Greater(t, tasks[0].Polls, 2)
		assert.Contains(t, r.err, "Polling → Polling  not_ready  CAPCHA_NOT_READY\r", "%d polls", tasks[0].Polls)
		assert.Regexp(t, `\r\x1b\[K.*Polling → Polling  not_ready  CAPCHA_NOT_READY  ×\d`, r.err, "a repeated move is redrawn in place")
		assert.True(t, strings.HasSuffix(r.err, "\n"), "the last line is ended")
	}
}

func TestSolveJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	r := w.run(withPolicy(w, append(hcaptchaArgs, "--json", "--ref", "mine")...)...)
	require.Equal(t, ExitOK, r.code, r.err)
	lines := decodeLines(t, r.out)
	require.Len(t, lines, 1)
	assert.ElementsMatch(t, []string{"id", "ref", "state", "token", "code", "submits", "polls", "resubmits", "cost"}, keysOf(lines[0]))
	assert.Equal(t, "Done", lines[0]["state"])
	assert.Equal(t, "mine", lines[0]["ref"])
	assert.EqualValues(t, 1, lines[0]["submits"])
	assert.Equal(t, "0.00299", lines[0]["cost"], "the price, fetched with get2")
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func TestSolveImage(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	img := pngBytes(t, 30, 10)
	file := w.file("captcha.png", string(img))
	r := w.run(withPolicy(w, "solve", "--image", file)...)
	require.Equal(t, ExitOK, r.code, r.err)
	list := w.tasks()
	require.Len(t, list, 1)
	s := w.store()
	defer s.Close()
	full, err := s.Get(t.Context(), list[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "base64", full.Method, "an image defaults to base64")
	assert.Equal(t, base64.StdEncoding.EncodeToString(img), full.Params["body"])
}

func TestSolveBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing image", []string{"solve", "--image", "nope.png"}, "--image nope.png: no such file"},
		{"tiny image", []string{"solve", "--image", "@tiny"}, "image is smaller than 100 bytes"},
		{"missing parameter", []string{"solve", "--method", "userrecaptcha", "--param", "pageurl=https://a.example"}, "--param googlekey: is required for method userrecaptcha"},
		{"bad pageurl", []string{"solve", "--method", "turnstile", "--param", "sitekey=x", "--param", "pageurl=example.com"}, "--param pageurl: must be an absolute http(s) URL"},
		{"malformed method", []string{"solve", "--method", "Re Captcha!"}, "--method: must be lower-case letters, digits and underscores"},
		{"no method", []string{"solve"}, "--method is required"},
		{"param without =", []string{"solve", "--method", "x", "--param", "sitekey"}, `--param "sitekey": want key=value`},
		{"param twice", []string{"solve", "--method", "x", "--param", "a=1", "--param", "a=2"}, "--param a: given twice"},
		{"proxy without type", []string{"solve", "--method", "x", "--param", "proxy=u:p@1.2.3.4:80"}, "--param proxytype: is required with proxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{})
			args := tc.args
			if len(args) == 3 && args[2] == "@tiny" {
				args = []string{"solve", "--image", w.file("tiny.png", string(pngBytes(t, 1, 1)))}
			}
			r := w.run(args...)
			assert.Equal(t, ExitUsage, r.code)
			assert.Contains(t, r.err, tc.want)
			assert.Equal(t, 1, bytes.Count([]byte(r.err), []byte("\n")), "one line: %q", r.err)
			assert.Zero(t, w.requests(), "nothing sent")
			assert.NotContains(t, r.err, "u:p@", "a proxy password is never echoed")
		})
	}
}

// TestSolveExitStatus: 2 for a failed task, 3 for an account error.
func TestSolveExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code  string
		exit  int
		state states.State
		say   string
	}{
		{"ERROR_BAD_PARAMETERS", ExitFailed, states.Failed, "failed: ERROR_BAD_PARAMETERS"},
		{"ERROR_ZERO_BALANCE", ExitNeedsAccountFix, states.NeedsAccountFix, "needs an account fix: ERROR_ZERO_BALANCE; Top up the balance"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{Mix: providersim.Mix{Submit: map[string]float64{tc.code: 1}, Poll: map[string]float64{}}})
			r := w.run(withPolicy(w, append(hcaptchaArgs, "--json")...)...)
			assert.Equal(t, tc.exit, r.code, r.err)
			assert.Contains(t, r.err, tc.say)
			var res map[string]any
			require.NoError(t, json.Unmarshal([]byte(r.out), &res))
			assert.Equal(t, string(tc.state), res["state"])
			assert.Equal(t, tc.code, res["code"])
		})
	}
}

func TestSolveUnreachableAPIFailsAfterRetries(t *testing.T) {
	t.Parallel()
	w := newWorld(t) // the URL points at a closed port
	r := w.run(withPolicy(w, hcaptchaArgs...)...)
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.err, "TRANSPORT_ERROR")
	assert.Empty(t, r.out)
}

// TestSolveUnknownMethod: a misspelt method is refused before anything is
// sent, with the method meant; --force-method sends it with a warning, and
// the provider's ERROR_NO_SUCH_METHOD fails the task (issue 12 point 3).
func TestSolveUnknownMethod(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	args := []string{"solve", "--method", "hcapcha", "--param", "sitekey=10000000-ffff", "--param", "pageurl=https://a.example/login"}
	r := w.run(withPolicy(w, args...)...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "--method hcapcha: not a method of the API (did you mean hcaptcha?); --force-method sends it anyway")
	assert.Zero(t, w.requests(), "nothing sent")
	assert.Empty(t, w.tasks(), "nothing stored")

	r = w.run(withPolicy(w, append(args, "--force-method")...)...)
	assert.Equal(t, ExitFailed, r.code, r.err)
	assert.Contains(t, r.err, "warning: --method hcapcha is not a method of the API (did you mean hcaptcha?)")
	assert.Contains(t, r.err, "ERROR_NO_SUCH_METHOD")
	tasks := w.tasks()
	require.Len(t, tasks, 1)
	assert.Equal(t, states.Failed, tasks[0].State)
	assert.Equal(t, "ERROR_NO_SUCH_METHOD", tasks[0].Code)
}
