package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	ourModule = "github.com/captchafsm/captchafsm"
	ourMain   = ourModule + "/cmd/captchafsm"
)

func moduleRootDir(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.Equal(t, ourModule, modulePath(filepath.Join(root, "go.mod")))
	return root
}

func TestInvocationCommand(t *testing.T) {
	t.Parallel()
	root := moduleRootDir(t)
	bin := t.TempDir()
	installed := filepath.Join(bin, "captchafsm")
	require.NoError(t, os.WriteFile(installed, []byte("#!/bin/sh\n"), 0o755))
	other := filepath.Join(t.TempDir(), "captchafsm")
	require.NoError(t, os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755))
	onPath := func(name string) (string, error) {
		if name == "captchafsm" {
			return installed, nil
		}
		return "", errors.New("not found")
	}
	goRunExe := "/tmp/go-build1234567/b001/exe/captchafsm"
	outside := t.TempDir()
	for _, tc := range []struct {
		name string
		inv  invocation
		want string
	}{
		{"go run from the module's root", invocation{exe: goRunExe, dir: root, pkg: ourMain, module: ourModule, version: "(devel)"},
			"go run ./cmd/captchafsm"},
		{"go run . in the command's directory", invocation{exe: goRunExe, dir: filepath.Join(root, "cmd", "captchafsm"), pkg: ourMain, module: ourModule},
			"go run ."},
		{"go run from a subdirectory", invocation{exe: goRunExe, dir: filepath.Join(root, "internal", "cli"), pkg: ourMain, module: ourModule},
			"go run ../../cmd/captchafsm"},
		{"go run pkg@version outside the module", invocation{exe: goRunExe, dir: outside, pkg: ourMain, module: ourModule, version: "v1.2.3"},
			"go run " + ourMain + "@v1.2.3"},
		{"go run in a workspace", invocation{exe: goRunExe, dir: outside, pkg: ourMain, module: ourModule, version: "(devel)"},
			"go run " + ourMain},
		{"go run's executable from the build cache (Go 1.24 on)",
			invocation{exe: "/root/.cache/go-build/18/183d5b594b95aaf5ebd3355f4d9f31dc87f545331ea5f2c27af50ef43ac81ff0-d/captchafsm", dir: root, pkg: ourMain, module: ourModule},
			"go run ./cmd/captchafsm"},
		{"GOTMPDIR elsewhere", invocation{exe: "/var/cache/gotmp/go-build99/b001/exe/captchafsm", dir: root, pkg: ourMain, module: ourModule},
			"go run ./cmd/captchafsm"},
		{"installed on PATH", invocation{exe: installed, arg0: "captchafsm", lookPath: onPath}, "captchafsm"},
		{"PATH names another file", invocation{exe: other, arg0: "captchafsm", lookPath: onPath}, other},
		{"started by a path", invocation{exe: installed, arg0: "./captchafsm", lookPath: onPath}, installed},
		{"a test binary is no go run", invocation{exe: "/tmp/go-build1/b001/cli.test", arg0: "/tmp/go-build1/b001/cli.test"},
			"/tmp/go-build1/b001/cli.test"},
		{"a path that needs quotes", invocation{exe: "/opt/my tools/captchafsm", arg0: "/opt/my tools/captchafsm"},
			"'/opt/my tools/captchafsm'"},
	} {
		assert.Equal(t, tc.want, tc.inv.command(), tc.name)
	}
}

// nextSteps are the commands demo prints to inspect its database.
func nextSteps(t *testing.T, out string) []string {
	t.Helper()
	var cmds []string
	for _, label := range []string{"Inspect one task:", "Replay them all:", "List the failures:"} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + ` +(.+)$`).FindStringSubmatch(out)
		require.Len(t, m, 2, "%q in %s", label, out)
		cmds = append(cmds, m[1])
	}
	return cmds
}

// shell runs a printed command line as a user pasting it would.
func shell(t *testing.T, dir string, env []string, line string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	require.NoError(t, err, line)
	return out.String(), 0
}

// TestDemoNextStepsWork: the commands demo prints at its end work when
// pasted as they are, from another directory, with nothing installed:
// after `go run ./cmd/captchafsm demo` they are go run commands, after a
// binary started by its path they name that path, and after a binary found
// on $PATH its bare name.
func TestDemoNextStepsWork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	t.Parallel()
	root := moduleRootDir(t)
	bin := t.TempDir()
	exe := filepath.Join(bin, "captchafsm")
	build := exec.Command(goTool, "build", "-o", exe, "./cmd/captchafsm")
	build.Dir = root
	b, err := build.CombinedOutput()
	require.NoError(t, err, "%s", b)
	clean := []string{EnvDB + "=", EnvDemoChild + "="} // nothing of the tests' environment leaks in
	elsewhere := t.TempDir()
	demo := []string{"demo", "--tasks", "6", "--speed", "1000"}
	check := func(how string, prefix string, out string, dir string, env []string) {
		t.Helper()
		steps := nextSteps(t, out)
		for _, step := range steps {
			assert.True(t, strings.HasPrefix(step, prefix+" "), "%s: %q should start with %q", how, step, prefix)
			got, code := shell(t, dir, env, step)
			assert.Equal(t, 0, code, "%s: %s\n%s", how, step, got)
		}
		got, _ := shell(t, dir, env, steps[0])
		assert.Contains(t, got, "[*] → Submitting", "%s: history shows the task", how)
		got, _ = shell(t, dir, env, steps[1])
		assert.Contains(t, got, "6 tasks replayed: 6 OK, 0 MISMATCH", how)
	}

	t.Run("binary by its path", func(t *testing.T) {
		cmd := exec.Command(exe, append(demo, "--db", "demo.db")...)
		cmd.Dir = t.TempDir() // a relative --db: the printed commands make it absolute
		cmd.Env = append(os.Environ(), clean...)
		out, err := cmd.Output()
		require.NoError(t, err)
		check("by path", exe, string(out), elsewhere, clean)
	})
	t.Run("binary on PATH", func(t *testing.T) {
		// Without --db the demo's database goes to a new directory of $TMPDIR.
		env := append(clean[:len(clean):len(clean)], "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+t.TempDir())
		cmd := exec.Command("sh", "-c", "captchafsm "+strings.Join(demo, " "))
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		require.NoError(t, err)
		check("on PATH", "captchafsm", string(out), elsewhere, env)
	})
	t.Run("go run", func(t *testing.T) {
		cmd := exec.Command(goTool, append([]string{"run", "./cmd/captchafsm"}, demo...)...)
		cmd.Dir = root
		// go run builds in $TMPDIR too: the executable is found there.
		env := append(clean[:len(clean):len(clean)], "TMPDIR="+t.TempDir())
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		require.NoError(t, err)
		check("go run", "go run ./cmd/captchafsm", string(out), root, env)
	})
}
