package cli

import (
	"bufio"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

func TestSimulateServesUntilInterrupted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	mix := w.file("mix.json", `{"submit": {"ERROR_ZERO_BALANCE": 1}}`)
	pr, pw := io.Pipe()
	var errb strings.Builder
	root := w.root()
	root.SetOut(pw)
	root.SetErr(&errb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Execute(ctx, root, []string{"simulate", "--mix", mix, "--seed", "4", "--balance", "7.5"})
		pw.Close()
	}()
	url, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	url = strings.TrimSpace(url)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, url)

	c, err := provider.New(provider.Config{BaseURL: url, Key: testKey})
	require.NoError(t, err)
	bal, err := c.Balance(ctx)
	require.NoError(t, err)
	assert.Equal(t, "7.5", bal)
	_, err = c.Submit(ctx, provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "k", "pageurl": "https://a.example"}})
	assert.ErrorIs(t, err, &provider.APIError{Code: "ERROR_ZERO_BALANCE"}, "the mix file is in force")

	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	assert.Equal(t, ExitOK, <-done)
	assert.Contains(t, errb.String(), "simulator stopped: 1 in.php and 1 res.php requests")
}

func TestSimulateBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"simulate", "--addr", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"simulate", "--speed", "0"}, "--speed 0: want a number above 0"},
		{[]string{"simulate", "--mix", "nope.json"}, "--mix nope.json: no such file"},
		{[]string{"simulate", "--mix", "@bad"}, `not a provider code`},
	} {
		args := tc.args
		if args[len(args)-1] == "@bad" {
			args[len(args)-1] = w.file("bad.json", `{"submit": {"HELLO": 0.5}}`)
		}
		r := w.run(args...)
		assert.Equal(t, ExitUsage, r.code, args)
		assert.Contains(t, r.err, tc.want)
	}
}

// simulating is a `captchafsm simulate` running in the test.
type simulating struct {
	url  string
	stop func() (code int, stderr string)
}

// lockedBuilder is a strings.Builder the command writes while the test
// may read it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startSimulate(t *testing.T, w *world, args ...string) simulating {
	t.Helper()
	pr, pw := io.Pipe()
	var errb lockedBuilder
	root := w.root()
	root.SetOut(pw)
	root.SetErr(&errb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Execute(ctx, root, append([]string{"simulate"}, args...))
		pw.Close()
	}()
	url, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, errb.String())
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	stopped := false
	stop := func() (int, string) {
		if !stopped {
			stopped = true
			cancel()
			code := <-done
			return code, errb.String()
		}
		return 0, errb.String()
	}
	t.Cleanup(func() { stop() })
	return simulating{url: strings.TrimSpace(url), stop: stop}
}

// TestSimulateZeroBalance: --balance 0 is an empty account (issue 12
// point 4: it started with 100).
func TestSimulateZeroBalance(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := startSimulate(t, w, "--balance", "0", "--mix", w.file("none.json", `{"submit":{},"poll":{}}`))
	c, err := provider.New(provider.Config{BaseURL: s.url, Key: testKey})
	require.NoError(t, err)
	bal, err := c.Balance(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "0", bal)
	_, err = c.Submit(t.Context(), provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "k", "pageurl": "https://a.example"}})
	assert.ErrorIs(t, err, &provider.APIError{Code: "ERROR_ZERO_BALANCE"})
	code, stderr := s.stop()
	assert.Equal(t, ExitOK, code)
	assert.Contains(t, stderr, "balance 0,")
	assert.Contains(t, stderr, "0 tasks charged")
}

// TestSimulateKeys: --keys names the keys that exist (issue 12 point 5).
func TestSimulateKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	other := "ffffffffffffffffffffffffffffffff"
	keys := w.file("keys.txt", "# the bots\nalice "+strings.ToUpper(testKey)+"\n\n"+"abcdefabcdefabcdefabcdefabcdef12\n")
	s := startSimulate(t, w, "--keys", keys)
	good, err := provider.New(provider.Config{BaseURL: s.url, Key: testKey})
	require.NoError(t, err)
	_, err = good.Balance(t.Context())
	require.NoError(t, err)
	bad, err := provider.New(provider.Config{BaseURL: s.url, Key: other})
	require.NoError(t, err)
	_, err = bad.Balance(t.Context())
	assert.ErrorIs(t, err, &provider.APIError{Code: "ERROR_KEY_DOES_NOT_EXIST"})
	_, stderr := s.stop()
	assert.Contains(t, stderr, "2 keys accepted")

	for _, tc := range []struct{ content, want string }{
		{"alice bob " + testKey, "line 1: want KEY or NAME KEY"},
		{"# c\nalice q7z9secret", "line 2: the key is not 32 hex characters"},
		{testKey + "\n" + strings.ToUpper(testKey), "line 2: the key is given twice"},
		{"# nothing\n", "no key in the file"},
	} {
		r := w.run("simulate", "--keys", w.file("bad.txt", tc.content))
		assert.Equal(t, ExitUsage, r.code, tc.content)
		assert.Contains(t, r.err, tc.want)
		for _, secret := range []string{"q7z9secret", testKey, strings.ToUpper(testKey)} {
			assert.NotContains(t, r.err, secret, "a key is never echoed")
		}
	}
	r := w.run("simulate", "--keys", "missing.txt")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "--keys missing.txt: no such file")
}

// TestSimulatePollTiming: the documented poll timing is on by default and
// can be relaxed (issue 12 point 7).
func TestSimulatePollTiming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "ERROR_TOO_MUCH_REQUESTS"},
		{[]string{"--poll-timing=false"}, "CAPCHA_NOT_READY"},
	} {
		w := newWorld(t)
		s := startSimulate(t, w, append(tc.args, "--mix", w.file("none.json", `{"submit":{},"poll":{}}`))...)
		c, err := provider.New(provider.Config{BaseURL: s.url, Key: testKey})
		require.NoError(t, err)
		id, err := c.Submit(t.Context(), provider.Request{Method: "hcaptcha", Params: map[string]string{"sitekey": "k", "pageurl": "https://a.example"}})
		require.NoError(t, err)
		got, err := c.Poll(t.Context(), []string{id})
		if tc.want == "CAPCHA_NOT_READY" {
			require.NoError(t, err)
			assert.Equal(t, tc.want, got[0].Code)
		} else {
			var ae *provider.APIError
			require.ErrorAs(t, err, &ae, "a poll 0 s after the submit")
			assert.Equal(t, tc.want, ae.Code)
			assert.Contains(t, ae.ErrorText, "the provider's docs ask for at least 10s")
		}
		_, stderr := s.stop()
		if tc.args == nil {
			assert.Contains(t, stderr, "poll timing enforced")
			assert.Contains(t, stderr, "1 polls too soon")
		} else {
			assert.Contains(t, stderr, "poll timing off")
		}
	}
}
