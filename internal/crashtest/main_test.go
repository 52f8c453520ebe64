package crashtest_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The captchafsm binary, built once for the package's tests.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// binary builds cmd/captchafsm (once) and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "captchafsm-crashtest-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "captchafsm")
		build := exec.Command("go", "build", "-o", binPath, "github.com/captchafsm/captchafsm/cmd/captchafsm")
		var out bytes.Buffer
		build.Stdout, build.Stderr = &out, &out
		if err := build.Run(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out.String())
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// result is one finished CLI command.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary to its end with env added to the test's
// environment (any CAPTCHAFSM_ variable of the test's own is dropped).
func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = childEnv(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err, "run %v", args)
	}
	return result{out.String(), errb.String(), code}
}

// childEnv is the test's environment without CAPTCHAFSM_ variables, plus
// env.
func childEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAPTCHAFSM_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// pngBase64 returns a base64 body of n bytes that starts with the PNG
// signature, enough for the simulator's check by content.
func pngBase64(n int) string {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	for i := 8; i < n; i++ {
		b[i] = byte(i)
	}
	return base64.StdEncoding.EncodeToString(b)
}
