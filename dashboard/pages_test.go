package dashboard_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var rowID = regexp.MustCompile(`<tr data-id="([0-9a-f-]{36})"`)

func rows(body string) []string {
	var ids []string
	for _, m := range rowID.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestIndexPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()

		w := do(t, f.handler, "GET", "/", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
		body := w.Body.String()
		ids := rows(body)
		require.Len(t, ids, 10)
		assert.Equal(t, s.parkedToo, ids[0], "newest first")
		assert.Equal(t, s.done[0], ids[9])
		assert.Regexp(t, `data-state="Done">\s*<span class="count">7</span>`, body)
		assert.Regexp(t, `data-state="NeedsAccountFix">\s*<span class="count">2</span>`, body)
		assert.Contains(t, body, `class="breaker open"`)
		assert.Regexp(t, `<button type="submit" id="account-fixed">Account fixed — release 2 parked task\(s\)</button>`, body)

		tests := []struct {
			query string
			want  []string
		}{
			{"?state=Failed", []string{s.failed}},
			{"?state=needs-account-fix", []string{s.parkedToo, s.parked}},
			{"?q=LOGIN-B", []string{s.parkedToo, s.parked, s.failed, s.retried}}, // login-broke-2, login-broke, login-bad, login-busy
			{"?q=ERROR_ZERO", []string{s.parked}},
			{"?state=Done&q=unsolvable", []string{s.resubmit}},
			{"?q=" + s.resubmit[24:], []string{s.resubmit}},
			{"?q=nothing-matches", nil},
		}
		for _, tt := range tests {
			w := do(t, f.handler, "GET", "/"+tt.query, "")
			require.Equal(t, http.StatusOK, w.Code, tt.query)
			assert.Equal(t, tt.want, rows(w.Body.String()), tt.query)
		}
		assert.Contains(t, do(t, f.handler, "GET", "/?q=nothing-matches", "").Body.String(), "No task matches this filter")
		assert.Equal(t, http.StatusBadRequest, do(t, f.handler, "GET", "/?state=Sleeping", "").Code)
		assert.Equal(t, http.StatusNotFound, do(t, f.handler, "GET", "/nowhere", "").Code)
	})
}

func TestIndexPageEscapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		w := do(t, f.handler, "POST", "/api/tasks", `{"method": "turnstile", "ref": "<script>alert(1)</script>", "params": {"sitekey": "0x4AAAAAAAC3DHQFLr1GavRN", "pageurl": "https://example.com/"}}`)
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
		body := do(t, f.handler, "GET", "/", "").Body.String()
		assert.NotContains(t, body, "<script>alert(1)</script>")
		assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	})
}

func TestTaskPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()

		w := do(t, f.handler, "GET", "/tasks/"+s.resubmit, "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		body := w.Body.String()
		assert.Contains(t, body, `<span class="badge big state-done" id="task-state">Done</span>`)
		for _, want := range []string{"created", "submit_accepted", "resubmit_needed", "resubmit_started", "solved",
			"ERROR_CAPTCHA_UNSOLVABLE", "The workers could not solve this CAPTCHA"} {
			assert.Contains(t, body, want)
		}
		assert.GreaterOrEqual(t, strings.Count(body, `<li class="step `), 8)
		// The diagram: one current state, Done; the path drawn.
		assert.Equal(t, 1, strings.Count(body, `node current`))
		assert.Regexp(t, `<g class="node current terminal" data-state="Done">`, body)
		assert.Regexp(t, `<g class="node visited" data-state="Resubmitting">`, body)
		assert.Regexp(t, `<g class="node" data-state="Failed">|<g class="node terminal" data-state="Failed">`, body)
		assert.Contains(t, body, `resubmit_needed</text>`)
		assert.Contains(t, body, "class Done current", "the Mermaid source highlights the state too")

		// Parked: the page says what a person should do.
		body = do(t, f.handler, "GET", "/tasks/"+s.parked, "").Body.String()
		assert.Contains(t, body, "This task waits for a person")
		assert.Regexp(t, `<g class="node current" data-state="NeedsAccountFix">`, body)

		// Retried: the transient code and its class.
		body = do(t, f.handler, "GET", "/tasks/login-busy", "").Body.String()
		assert.Contains(t, body, `<code>ERROR_NO_SLOT_AVAILABLE</code> <span class="class class-transient">transient</span>`)

		// Credentials never reach the page.
		body = do(t, f.handler, "GET", "/tasks/"+s.done[2], "").Body.String()
		assert.NotContains(t, body, "s3cret-pass")
		assert.Contains(t, body, "***:***@203.0.113.7:3128")

		assert.Equal(t, http.StatusNotFound, do(t, f.handler, "GET", "/tasks/nope", "").Code)
	})
}

func TestAccountFixedForm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.populate()
		f.sim.SetBalance(100)
		w := do(t, f.handler, "POST", "/account-fixed", "", "Content-Type", "application/x-www-form-urlencoded",
			"Sec-Fetch-Site", "same-origin", "Origin", "null")
		require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
		assert.Equal(t, "/?released=2", w.Header().Get("Location"))
		body := do(t, f.handler, "GET", "/?released=2", "").Body.String()
		assert.Contains(t, body, "Released 2 task(s) to Submitting.")
		assert.Contains(t, body, `class="breaker closed"`)
		assert.NotContains(t, do(t, f.handler, "GET", "/?released=<b>", "").Body.String(), "Released", "only a number is echoed")
	})
}
