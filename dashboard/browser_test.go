package dashboard_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// EnvScreenshot names the file the browser test saves a screenshot of a
// task's page to; a relative path is taken from the module's root
// (CAPTCHAFSM_SCREENSHOT=docs/dashboard.png).
const EnvScreenshot = "CAPTCHAFSM_SCREENSHOT"

// EnvChromium overrides where the browser test looks for Chromium.
const EnvChromium = "CAPTCHAFSM_CHROMIUM"

// findChromium returns Debian's chromium (or another Chromium-family
// browser on PATH), or "" when none is installed.
func findChromium() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowser opens the dashboard in headless Chromium: the task list, a
// task's timeline and diagram, the filter, and the account-fixed button.
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium: install Debian's chromium package (apt-get install -y chromium) or set " + EnvChromium + " to run the browser test")
	}
	const token = "browser-test-token-0123456789"
	f := newFixture(t, fixtureOpts{token: token})
	s := f.populate()
	srv := httptest.NewServer(f.handler) // 127.0.0.1
	defer srv.Close()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 900),
	)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// Without the token: 401.
	body, err := run(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.Text(chromedp.CSS("body")))
	require.NoError(t, err)
	assert.Contains(t, body, "unauthorized")

	// Log in with ?token=, land on the overview without the token in the URL.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/?token="+token),
		chromedp.WaitVisible(chromedp.CSS("#tasks")),
	))
	location := get(t, ctx, chromedp.Location())
	assert.NotContains(t, location, "token=", "the login redirect drops the token from the address bar")
	rows := get(t, ctx, chromedp.Nodes(chromedp.CSSAll("#tasks tbody tr[data-id]")))
	require.Len(t, rows, 10, "every task of the store is listed")
	listed := map[string]bool{}
	for _, n := range rows {
		listed[n.AttributeValue("data-id")] = true
	}
	for _, id := range append(append([]string{}, s.done...), s.retried, s.resubmit, s.failed, s.parked, s.parkedToo) {
		assert.True(t, listed[id], "task %s listed", id)
	}
	assert.Equal(t, "7", get(t, ctx, chromedp.Text(chromedp.CSS(`#counts a[data-state="Done"] .count`))))
	assert.Equal(t, "2", get(t, ctx, chromedp.Text(chromedp.CSS(`#counts a[data-state="NeedsAccountFix"] .count`))))
	breaker := get(t, ctx, chromedp.AttributeValue(chromedp.CSS("#breaker"), "class"))
	assert.Contains(t, breaker.Value, "open")

	// Filter by state through the form.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`select[name="state"]`), "Failed"),
		chromedp.Click(chromedp.CSS(`form.filter button`)),
		chromedp.WaitVisible(chromedp.CSS(`#counts a.selected[data-state="Failed"]`)),
	))
	failedRows := get(t, ctx, chromedp.Nodes(chromedp.CSSAll("#tasks tbody tr[data-id]")))
	require.Len(t, failedRows, 1)
	assert.Equal(t, s.failed, failedRows[0].AttributeValue("data-id"))

	// Open the resubmitted task from the list: its timeline and diagram.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#counts a.all`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+s.resubmit+`"]`)),
		chromedp.Click(chromedp.CSS(`tr[data-id="`+s.resubmit+`"] a.task-link`)),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	))
	location = get(t, ctx, chromedp.Location())
	assert.True(t, strings.HasSuffix(location, "/tasks/"+s.resubmit), location)
	assert.Equal(t, "Done", get(t, ctx, chromedp.Text(chromedp.CSS("#task-state"))))
	timeline := get(t, ctx, chromedp.Text(chromedp.CSS("#timeline")))
	for _, want := range []string{"created", "submit_accepted", "ERROR_CAPTCHA_UNSOLVABLE", "resubmit_needed", "resubmit_started", "solved"} {
		assert.Contains(t, timeline, want)
	}
	steps := get(t, ctx, chromedp.Nodes(chromedp.CSSAll("#timeline li.step")))
	assert.GreaterOrEqual(t, len(steps), 8, "each transition is a step (repeated polls grouped)")
	current := get(t, ctx, chromedp.Nodes(chromedp.CSSAll("svg.diagram g.node.current")))
	require.Len(t, current, 1, "exactly one state is highlighted")
	assert.Equal(t, "Done", current[0].AttributeValue("data-state"))

	if out := os.Getenv(EnvScreenshot); out != "" {
		png := get(t, ctx, chromedp.FullScreenshot(100))
		path := out
		if !filepath.IsAbs(path) {
			path = filepath.Join(moduleRoot(t), path)
		}
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot saved to %s", path)
	}

	// The proxy's login and password never reach the page.
	checkout, err := run(ctx, chromedp.Steps(
		chromedp.Navigate(srv.URL+"/tasks/"+s.done[2]),
		chromedp.WaitVisible(chromedp.CSS("#params")),
	), chromedp.Text(chromedp.CSS("body")))
	require.NoError(t, err)
	assert.NotContains(t, checkout, "s3cret-pass")
	assert.NotContains(t, checkout, "scraper:")
	assert.Contains(t, checkout, "***:***@203.0.113.7:3128")

	// Account fixed: the form's POST goes through in a real browser (same
	// origin, session cookie) and releases both parked tasks.
	f.sim.SetBalance(100)
	released, err := run(ctx, chromedp.Steps(
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitEnabled(chromedp.CSS("#account-fixed")),
		chromedp.Click(chromedp.CSS("#account-fixed")),
		chromedp.WaitVisible(chromedp.CSS("#released")),
	), chromedp.Text(chromedp.CSS("#released")))
	require.NoError(t, err)
	assert.Contains(t, released, "Released 2 task(s)")
	assert.False(t, f.eng.BreakerOpen())
	require.NoError(t, f.eng.Drain(ctx))
}

// run does first, then returns what get reads.
func run[T any](ctx context.Context, first chromedp.Action[chromedp.Void], get chromedp.Action[T]) (T, error) {
	if err := chromedp.Do(ctx, first); err != nil {
		var zero T
		return zero, err
	}
	return chromedp.Run(ctx, get)
}

// get runs a and returns its value; an error fails the test.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

// moduleRoot is the directory holding go.mod, above the package's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
}
