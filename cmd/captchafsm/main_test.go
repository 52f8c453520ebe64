package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinary builds captchafsm and runs it as a user would: the exit
// statuses and outputs of a few commands, and demo --crash, whose child
// engine is this very binary killed with SIGKILL.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "captchafsm")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	run := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return out.String(), errb.String(), code
	}

	out, _, code := run(nil, "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "demo")

	_, errOut, code := run([]string{"CAPTCHAFSM_API_KEY=xyz"}, "balance")
	assert.Equal(t, 1, code)
	assert.Equal(t, "captchafsm: CAPTCHAFSM_API_KEY: the key must be 32 hex characters\n", errOut)

	db := filepath.Join(dir, "demo.db")
	out, errOut, code = run(nil, "demo", "--tasks", "30", "--speed", "50", "--crash", "--db", db, "--json")
	require.Equal(t, 0, code, errOut)
	var s struct {
		Tasks  int            `json:"tasks"`
		States map[string]int `json:"states"`
		Crash  struct {
			Killed   bool `json:"killed"`
			InFlight int  `json:"in_flight_at_kill"`
			Finished int  `json:"in_flight_finished"`
		} `json:"crash"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	assert.Equal(t, 30, s.Tasks)
	assert.True(t, s.Crash.Killed)
	assert.Equal(t, s.Crash.InFlight, s.Crash.Finished)
	assert.Contains(t, errOut, "KILLED")

	out, _, code = run(nil, "replay", "--all", "--db", db)
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasSuffix(out, "30 tasks replayed: 30 OK, 0 MISMATCH\n"), out)
}
