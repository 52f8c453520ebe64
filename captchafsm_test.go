package captchafsm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm"
	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

const testKey = "00112233445566778899aabbccddeeff"

// TestOpenSimulator: one call opens a file and an engine on the in-process
// simulator; Close closes both (the file is free again).
func TestOpenSimulator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t.Setenv(captchafsm.EnvAPIKey, "")
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "bot.db")
		s, err := captchafsm.Open(ctx, path, captchafsm.Options{Simulator: &providersim.Config{Mix: providersim.NoErrors()}})
		require.NoError(t, err)
		req := captchafsm.Turnstile{SiteKey: cfKey, PageURL: page}.Request()
		req.Ref = "login-42"
		res, err := s.Solve(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		assert.NotEmpty(t, res.Token)
		assert.Equal(t, 1, len(s.Simulator().Ledger().Tasks), "the simulator charged it")
		_, err = captchafsm.Open(ctx, path, captchafsm.Options{Simulator: &providersim.Config{}})
		require.ErrorIs(t, err, persist.ErrLocked, "one process per file")

		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "a second Close returns the first's result")
		_, err = s.Submit(ctx, req)
		require.ErrorIs(t, err, engine.ErrClosed)

		// The file is closed: another Open finds the task by its ref.
		again, err := captchafsm.Open(ctx, path, captchafsm.Options{Simulator: &providersim.Config{}})
		require.NoError(t, err)
		defer again.Close()
		sub, err := again.Enqueue(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, captchafsm.Submission{ID: res.ID, Attached: true}, sub)
		got, err := again.Wait(ctx, "login-42")
		require.NoError(t, err)
		assert.Equal(t, res.Token, got.Token)
		assert.Empty(t, again.Simulator().Ledger().Tasks, "nothing sent again")
	})
}

// TestOpenSimulatorSpeed: the simulator's speed speeds the engine's default
// waits up as much; the policy's own values stay.
func TestOpenSimulatorSpeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, err := captchafsm.Open(ctx, filepath.Join(t.TempDir(), "fast.db"), captchafsm.Options{
			Simulator: &providersim.Config{Speed: 100, Mix: providersim.NoErrors()}})
		require.NoError(t, err)
		defer s.Close()
		start := time.Now()
		res, err := s.Solve(ctx, captchafsm.Turnstile{SiteKey: cfKey, PageURL: page}.Request())
		require.NoError(t, err)
		assert.Equal(t, states.Done, res.State)
		// The first poll of a token method at 20 s / 100, then every 50 ms;
		// the simulator solves it in 12–40 s / 100.
		assert.Less(t, time.Since(start), time.Second)
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	})
}

// TestOpenRefusesBadOptions: no key, a bad key, a bad simulator or a store
// of the caller's: refused before a file is created, naming what is wrong,
// and never repeating the key.
func TestOpenRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "never.db")
	t.Setenv(captchafsm.EnvAPIKey, "")
	t.Setenv(captchafsm.EnvAPIURL, "")
	for name, tc := range map[string]struct {
		opts captchafsm.Options
		env  string
		want string
	}{
		"no key":       {captchafsm.Options{}, "", "key: is not set: give Options.APIKey or set CAPTCHAFSM_API_KEY"},
		"bad key":      {captchafsm.Options{APIKey: "not-a-key-but-a-secret-1234"}, "", "key: must be 32 hex characters"},
		"bad env key":  {captchafsm.Options{}, "secret-in-the-environment", "key: must be 32 hex characters"},
		"bad base URL": {captchafsm.Options{APIKey: testKey, BaseURL: "ftp://example.com"}, "", "base_url"},
		"bad policy":   {captchafsm.Options{APIKey: testKey, Engine: engine.Config{Policy: engine.Policy{SubmitRate: 100}}}, "", "submit_rate"},
		"bad simulator": {captchafsm.Options{Simulator: &providersim.Config{Speed: -1}}, "",
			"Options.Simulator"},
		"own store": {captchafsm.Options{APIKey: testKey, Engine: engine.Config{Store: fakeStore{}}}, "", "Options.Engine.Store and API must be nil"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(captchafsm.EnvAPIKey, tc.env)
			_, err := captchafsm.Open(ctx, path, tc.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret")
			_, statErr := os.Stat(path)
			assert.True(t, errors.Is(statErr, os.ErrNotExist), "no file created")
		})
	}
	_, err := captchafsm.Open(ctx, path, captchafsm.Options{})
	require.ErrorIs(t, err, captchafsm.ErrInvalid)
}

// fakeStore is a store Open must refuse to take.
type fakeStore struct{ persist.Store }

// TestOpenEnvironment: the key and the endpoint come from the environment
// when the options leave them out: a simulator served on loopback, as
// `captchafsm simulate` serves one, answers a Solver opened with nothing
// but a path. Across a Close and an Open, the tasks in flight are
// collected by ref and nothing is paid twice.
func TestOpenEnvironment(t *testing.T) {
	srv, err := providersim.Start(providersim.Config{Seed: 3, Speed: 1000, Mix: providersim.NoErrors(), Key: testKey}, "")
	require.NoError(t, err)
	defer srv.Close()
	t.Setenv(captchafsm.EnvAPIURL, srv.URL)
	t.Setenv(captchafsm.EnvAPIKey, testKey)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bot.db")
	fast := captchafsm.Options{Engine: engine.Config{Policy: engine.Policy{}.Faster(1000)}}
	s, err := captchafsm.Open(ctx, path, fast)
	require.NoError(t, err)
	refs := []string{"a", "b", "c", "d", "e"}
	for _, ref := range refs {
		req := captchafsm.Image{Bytes: png(300 + len(ref))}.Request()
		req.Ref = ref
		_, err := s.Submit(ctx, req)
		require.NoError(t, err)
	}
	// Tasks in flight stay in the file; the next engine holds its first
	// submit for the provider's 3-second window after this one's last.
	require.NoError(t, s.Close())

	s, err = captchafsm.Open(ctx, path, fast)
	require.NoError(t, err)
	defer s.Close()
	for _, ref := range refs {
		res, err := s.Wait(ctx, ref)
		require.NoError(t, err, ref)
		assert.Equal(t, states.Done, res.State)
		assert.NotEmpty(t, res.Token)
	}
	l := srv.Sim.Ledger()
	assert.Len(t, l.Tasks, len(refs), "each task paid once")
}
