package readmetest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

const (
	tasks  = 50
	apiKey = "0123456789abcdef0123456789abcdef" // the README's
	// mix is the simulator's error mix: the errors the engine recovers
	// from (busy workers, unsolvable images). The default mix also fails
	// 0.3% of tasks for good (BAD_PARAMETERS) and parks 0.2% on an empty
	// balance: the test asks for every answer.
	mix = `{"submit": {"ERROR_NO_SLOT_AVAILABLE": 0.05}, "poll": {"ERROR_CAPTCHA_UNSOLVABLE": 0.02}}`
)

// TestReadmeBotSurvivesAKill: the README's crash-surviving bot, built in a
// module of its own from the README's text alone, solves 50 captchas
// against `captchafsm simulate`, is killed with SIGKILL once its first
// answer is out (the other tasks at the provider), runs again on the same
// file and collects all 50 answers by ref: the same answers, nothing paid
// twice.
func TestReadmeBotSurvivesAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs and runs them: not in -short")
	}
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	bot := buildBot(t, repo, dir)
	cli := filepath.Join(dir, "captchafsm")
	build := exec.Command("go", "build", "-o", cli, "./cmd/captchafsm")
	build.Dir = repo
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/captchafsm:\n%s", out)

	// The README: `captchafsm simulate --addr 127.0.0.1:8081 --speed 10 &`,
	// on a free port, with the recoverable errors only.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mix.json"), []byte(mix), 0o600))
	simURL, stopSim := simulate(t, cli, "simulate", "--addr", "127.0.0.1:0", "--speed", "10", "--mix", filepath.Join(dir, "mix.json"))

	var files []string
	for i := range tasks {
		f := filepath.Join(dir, "captchas", fmt.Sprintf("page-%02d.png", i))
		require.NoError(t, os.MkdirAll(filepath.Dir(f), 0o700))
		require.NoError(t, os.WriteFile(f, png(400+i), 0o600))
		files = append(files, f)
	}
	env := append(os.Environ(), "CAPTCHAFSM_API_URL="+simURL, "CAPTCHAFSM_API_KEY="+apiKey)

	// First run: killed once an answer is out.
	first := runBot(t, bot, dir, env, files, true)
	require.GreaterOrEqual(t, len(first.answers), 1)
	require.Less(t, len(first.answers), tasks, "killed midway: not every answer was out")
	assert.Contains(t, first.stderr, fmt.Sprintf("%d captchas submitted", tasks))
	st := openStore(t, dir)
	counts, err := st.Count(context.Background())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	t.Logf("at the kill: %d answers printed; tasks per state %v", len(first.answers), counts)
	require.Equal(t, tasks, total(counts), "every task was durable before the kill")
	require.Less(t, counts[states.Done], tasks, "tasks were still at the provider when the bot died")

	// Second run, to its end.
	second := runBot(t, bot, dir, env, files, false)
	require.Len(t, second.answers, tasks, "every answer, by ref:\n%s", second.stderr)
	for i := range tasks {
		ref := fmt.Sprintf("page-%02d.png", i)
		tok, ok := second.answers[ref]
		require.True(t, ok, "no answer for %s", ref)
		assert.NotEmpty(t, tok, ref)
		assert.NotContains(t, tok, "failed", ref)
		if before, ok := first.answers[ref]; ok {
			assert.Equal(t, before, tok, "%s: the answer the first run printed", ref)
		}
	}

	// The file holds the 50 tasks, Done; the simulator charged what their
	// histories accepted, and at most the submits they name possibly
	// charged besides.
	st = openStore(t, dir)
	defer st.Close()
	list, err := st.List(context.Background(), persist.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list, tasks, "no task added by the second run")
	accepted, doubt := 0, 0
	for _, tk := range list {
		assert.Equal(t, states.Done, tk.State, tk.Ref)
		hist, err := st.History(context.Background(), tk.ID)
		require.NoError(t, err)
		for _, r := range hist {
			switch {
			case r.Event == transitions.SubmitAccepted:
				accepted++
			case r.PossiblyCharged:
				doubt++
			}
		}
	}
	charged := stopSim()
	assert.GreaterOrEqual(t, charged, accepted, "every accepted submit was charged")
	assert.LessOrEqual(t, charged, accepted+doubt, "nothing charged that the histories do not name")
	t.Logf("second run: %d answers; the simulator charged %d tasks (%d accepted, %d possibly charged)", len(second.answers), charged, accepted, doubt)
}

// buildBot writes the README's crash-surviving bot into a module of its
// own in dir and builds it.
func buildBot(t *testing.T, repo, dir string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	require.NoError(t, err)
	s := string(readme)
	at := strings.Index(s, "<!-- crash-bot")
	require.GreaterOrEqual(t, at, 0, "README.md has no crash-bot program")
	begin := strings.Index(s[at:], "```go\n")
	require.GreaterOrEqual(t, begin, 0)
	code := s[at+begin+len("```go\n"):]
	code = code[:strings.Index(code, "```\n")]
	mod := filepath.Join(dir, "bot")
	require.NoError(t, os.MkdirAll(mod, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "main.go"), []byte(code), 0o600))
	gomod := fmt.Sprintf(`module example.com/readmebot

go 1.26

require github.com/captchafsm/captchafsm v0.0.0-00010101000000-000000000000

replace github.com/captchafsm/captchafsm => %s
`, strconv.Quote(repo)) // quoted: a path may hold spaces
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o600))
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o600))

	bin := filepath.Join(dir, "readmebot")
	build := func(proxy string) ([]byte, error) {
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOPROXY="+proxy)
		return cmd.CombinedOutput()
	}
	out, err := build("off")
	if err != nil {
		// A dependency the module cache lacks: the machine's proxy.
		t.Logf("offline build failed, trying GOPROXY:\n%s", out)
		proxy := os.Getenv("GOPROXY")
		if proxy == "" {
			proxy = "https://proxy.golang.org,direct"
		}
		out, err = build(proxy)
	}
	require.NoError(t, err, "go build of the README's bot:\n%s", out)
	return bin
}

// simulate starts `captchafsm simulate` and returns its URL and a stop
// function that interrupts it and returns the tasks it charged, from the
// ledger it prints as it stops.
func simulate(t *testing.T, cli string, args ...string) (string, func() int) {
	t.Helper()
	cmd := exec.Command(cli, args...)
	cmd.Env = os.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		m := regexp.MustCompile(`(\d+) tasks charged`).FindStringSubmatch(stderr.String())
		require.NotNil(t, m, "the simulator's ledger:\n%s", stderr.String())
		n, _ := strconv.Atoi(m[1])
		return n
	}
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		// Its stderr is read once it has exited: it says why.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		stopped = true
		t.Fatalf("the simulator gave no URL: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(line), stop
}

type botRun struct {
	answers map[string]string // ref → token
	stderr  string
}

// runBot runs the bot on files in dir (its bot.db there). With kill, it is
// killed with SIGKILL as soon as its first answer is out.
func runBot(t *testing.T, bot, dir string, env, files []string, kill bool) botRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bot, files...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	run := botRun{answers: map[string]string{}}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		ref, tok, _ := strings.Cut(sc.Text(), " ")
		run.answers[ref] = tok
		if kill {
			require.NoError(t, cmd.Process.Kill()) // SIGKILL
			break
		}
	}
	werr := cmd.Wait()
	run.stderr = stderr.String()
	if kill {
		var ee *exec.ExitError
		require.ErrorAs(t, werr, &ee, "killed:\n%s", run.stderr)
		assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
	} else {
		require.NoError(t, werr, run.stderr)
	}
	return run
}

func openStore(t *testing.T, dir string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, "bot.db"), nil)
	require.NoError(t, err)
	return st
}

func total(c map[states.State]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// png returns n bytes that start as a PNG file does, distinct for each n.
func png(n int) []byte {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	for i := 8; i < n; i++ {
		b[i] = byte(i * n)
	}
	return b
}
