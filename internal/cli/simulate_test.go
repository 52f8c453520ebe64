package cli

import (
	"bufio"
	"context"
	"io"
	"strings"
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
