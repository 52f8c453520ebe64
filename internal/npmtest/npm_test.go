package npmtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestThirdPartyClients runs every method of both npm clients, and the
// NO_SLOT, ZERO_BALANCE and UNSOLVABLE errors through their own error
// handling, against the built `captchafsm simulate` (issue 12). It skips
// when node, npm or the npm registry is missing, and when .ci/run has run
// the script already.
func TestThirdPartyClients(t *testing.T) {
	if os.Getenv("CAPTCHAFSM_NPM_CLIENTS") == "done" {
		t.Skip("CI ran .ci/npm-clients.sh as its own step")
	}
	if testing.Short() {
		t.Skip("installs npm packages and builds the binary: not in -short")
	}
	for _, tool := range []string{"node", "npm", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script, err := filepath.Abs("../../.ci/npm-clients.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Logf("%s", lastLines(string(out), 6))
	case errors.As(err, &exit) && exit.ExitCode() == 77:
		t.Skipf("the npm clients could not be installed:\n%s", lastLines(string(out), 4))
	default:
		t.Fatalf("%v\n%s", err, out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
