package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/dashboard"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
)

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

func TestAPIList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()

		w := do(t, f.handler, "GET", "/api/tasks", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
		all := decode[[]dashboard.Task](t, w.Body.String())
		require.Len(t, all, 10)
		assert.Equal(t, s.done[0], all[0].ID, "creation order")
		assert.Equal(t, s.parkedToo, all[9].ID)
		for _, task := range all {
			assert.Nil(t, task.Params, "lists carry no params")
		}
		// Every field is present, even empty ones (the shape of list --json).
		assert.Contains(t, w.Body.String(), `"cost": ""`)

		tests := []struct {
			query  string
			status int
			n      int
			want   string
		}{
			{"?state=Failed", 200, 1, ""},
			{"?state=needs-account-fix", 200, 2, ""},
			{"?state=Done", 200, 7, ""},
			{"?state=Polling", 200, 0, ""},
			{"?limit=3", 200, 3, ""},
			{"?state=Solved", 400, 0, `state \"Solved\": not a state`},
			{"?limit=-1", 400, 0, "limit"},
			{"?limit=x", 400, 0, "limit"},
		}
		for _, tt := range tests {
			w := do(t, f.handler, "GET", "/api/tasks"+tt.query, "")
			require.Equal(t, tt.status, w.Code, "%s: %s", tt.query, w.Body.String())
			if tt.status != 200 {
				assert.Contains(t, w.Body.String(), tt.want, tt.query)
				continue
			}
			assert.Len(t, decode[[]dashboard.Task](t, w.Body.String()), tt.n, tt.query)
		}
	})
}

func TestAPIGetRedactsAndFindsByRef(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()

		w := do(t, f.handler, "GET", "/api/tasks/"+s.done[2], "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.NotContains(t, w.Body.String(), "s3cret-pass")
		assert.NotContains(t, w.Body.String(), "scraper")
		task := decode[dashboard.Task](t, w.Body.String())
		assert.Equal(t, "***:***@203.0.113.7:3128", task.Params["proxy"])
		assert.Equal(t, "HTTP", task.Params["proxytype"])
		assert.Equal(t, states.Done, task.State)
		assert.NotEmpty(t, task.Token)

		w = do(t, f.handler, "GET", "/api/tasks/"+s.done[0], "")
		image := decode[dashboard.Task](t, w.Body.String())
		assert.Equal(t, "<400 characters of base64>", image.Params["body"], "image bodies are shown by size")

		w = do(t, f.handler, "GET", "/api/tasks/login-unsolvable", "")
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, s.resubmit, decode[dashboard.Task](t, w.Body.String()).ID, "an id may be a ref")

		w = do(t, f.handler, "GET", "/api/tasks/no-such-task", "")
		assert.Equal(t, http.StatusNotFound, w.Code)
		assert.Contains(t, decode[map[string]string](t, w.Body.String())["error"], `"no-such-task"`)
	})
}

func TestAPIHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()

		w := do(t, f.handler, "GET", "/api/tasks/"+s.resubmit+"/history", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		h := decode[dashboard.History](t, w.Body.String())
		assert.Equal(t, s.resubmit, h.Task.ID)
		assert.NotNil(t, h.Task.Params)
		var events []string
		for i, r := range h.History {
			assert.Equal(t, uint64(i+1), r.Seq)
			if r.Event != "not_ready" {
				events = append(events, r.Event)
			}
		}
		assert.Equal(t, []string{"created", "submit_sending", "submit_accepted", "resubmit_needed",
			"resubmit_started", "submit_sending", "submit_accepted", "solved"}, events)
		assert.Equal(t, states.State(""), h.History[0].From)
		last := h.History[len(h.History)-1]
		assert.Equal(t, states.Polling, last.From)
		assert.Equal(t, states.Done, last.To)

		w = do(t, f.handler, "GET", "/api/tasks/"+s.retried+"/history", "")
		h = decode[dashboard.History](t, w.Body.String())
		var codes []string
		for _, r := range h.History {
			if r.Code != "" {
				codes = append(codes, r.Event+":"+r.Code)
			}
		}
		assert.Contains(t, codes, "transient_error:ERROR_NO_SLOT_AVAILABLE")

		assert.Equal(t, http.StatusNotFound, do(t, f.handler, "GET", "/api/tasks/nope/history", "").Code)
	})
}

func TestAPISummaryAndMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.populate()

		w := do(t, f.handler, "GET", "/api/summary", "")
		require.Equal(t, http.StatusOK, w.Code)
		sum := decode[dashboard.Summary](t, w.Body.String())
		assert.Equal(t, 10, sum.Total)
		assert.Equal(t, map[states.State]int{states.Submitting: 0, states.Backoff: 0, states.Polling: 0,
			states.Resubmitting: 0, states.Done: 7, states.Failed: 1, states.NeedsAccountFix: 2}, sum.Counts)
		require.NotNil(t, sum.BreakerOpen)
		assert.True(t, *sum.BreakerOpen)

		w = do(t, f.handler, "GET", "/metrics", "")
		require.Equal(t, http.StatusOK, w.Code)
		for _, want := range []string{
			`captchafsm_tasks{state="Done"} 7`,
			`captchafsm_tasks{state="NeedsAccountFix"} 2`,
			`captchafsm_breaker_open 1`,
			`captchafsm_api_answers_total{class="account",code="ERROR_ZERO_BALANCE",endpoint="in.php"} 1`,
			`captchafsm_transitions_total{event="breaker_open",from="Submitting",to="NeedsAccountFix"} 1`,
		} {
			assert.Contains(t, w.Body.String(), want)
		}
	})
}

func TestAPISubmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		ctx := context.Background()
		body := `{"method": "userrecaptcha", "ref": "api-1", "params": {"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-", "pageurl": "https://example.com/"}}`

		w := do(t, f.handler, "POST", "/api/tasks", body)
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
		res := decode[dashboard.SubmitResult](t, w.Body.String())
		assert.True(t, res.Added)
		assert.Equal(t, "/api/tasks/"+res.ID, w.Header().Get("Location"))
		w = do(t, f.handler, "GET", "/api/tasks/"+res.ID+"?wait=30s", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		done := decode[dashboard.Task](t, w.Body.String())
		assert.Equal(t, states.Done, done.State, "?wait returns once the engine is done with the task")
		assert.NotEmpty(t, done.Token)
		assert.Equal(t, http.StatusBadRequest, do(t, f.handler, "GET", "/api/tasks/"+res.ID+"?wait=soon", "").Code)

		w = do(t, f.handler, "POST", "/api/tasks", body)
		require.Equal(t, http.StatusOK, w.Code, "the same ref adds no task")
		again := decode[dashboard.SubmitResult](t, w.Body.String())
		assert.Equal(t, dashboard.SubmitResult{ID: res.ID, Added: false}, again)

		bad := []struct {
			name, body, ctype string
			status            int
			want              string
		}{
			{"no method", `{"params": {}}`, "", 400, "method"},
			{"missing param", `{"method": "userrecaptcha", "params": {"googlekey": "6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-"}}`, "", 400, "pageurl"},
			{"key in params", `{"method": "post", "params": {"key": "x"}}`, "", 400, "key"},
			{"unknown field", `{"method": "post", "priority": 1}`, "", 400, "priority"},
			{"not json", `method=post`, "", 400, "body"},
			{"two objects", `{"method": "turnstile"} {"method": "post"}`, "", 400, "one JSON object"},
			{"form content type", `{"method": "post"}`, "application/x-www-form-urlencoded", 415, "application/json"},
			{"too big", `{"method": "base64", "params": {"body": "` + strings.Repeat("A", dashboard.MaxSubmitBody) + `"}}`, "", 413, "larger"},
		}
		for _, tt := range bad {
			var w = do(t, f.handler, "POST", "/api/tasks", tt.body)
			if tt.ctype != "" {
				w = do(t, f.handler, "POST", "/api/tasks", tt.body, "Content-Type", tt.ctype)
			}
			require.Equal(t, tt.status, w.Code, "%s: %s", tt.name, w.Body.String())
			assert.Contains(t, decode[map[string]string](t, w.Body.String())["error"], tt.want, tt.name)
		}
		list, err := f.store.List(ctx, persistAll)
		require.NoError(t, err)
		assert.Len(t, list, 1, "refused requests store nothing")
	})
}

func TestAPIAccountFixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()
		require.True(t, f.eng.BreakerOpen())
		f.sim.SetBalance(100)

		w := do(t, f.handler, "POST", "/api/account-fixed", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.Equal(t, dashboard.AccountFixedResult{Released: 2}, decode[dashboard.AccountFixedResult](t, w.Body.String()))
		assert.False(t, f.eng.BreakerOpen())
		require.NoError(t, f.eng.Drain(context.Background()))
		for _, id := range []string{s.parked, s.parkedToo} {
			task, err := f.store.Get(context.Background(), id)
			require.NoError(t, err)
			assert.Equal(t, states.Done, task.State)
		}
		w = do(t, f.handler, "POST", "/api/account-fixed", "")
		assert.Equal(t, dashboard.AccountFixedResult{Released: 0}, decode[dashboard.AccountFixedResult](t, w.Body.String()))
	})
}

// TestAPIReadOnly serves a store no engine drives: reads work, submits are
// refused, account-fixed releases the parked tasks in the store.
func TestAPIReadOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		s := f.populate()
		require.NoError(t, f.eng.Close())
		h := dashboard.New(dashboard.Config{Store: f.store})

		assert.Equal(t, http.StatusOK, do(t, h, "GET", "/api/tasks", "").Code)
		sum := decode[dashboard.Summary](t, do(t, h, "GET", "/api/summary", "").Body.String())
		assert.Nil(t, sum.BreakerOpen, "no engine, no breaker to report")
		assert.Contains(t, do(t, h, "GET", "/api/summary", "").Body.String(), `"breaker_open": null`)

		w := do(t, h, "POST", "/api/tasks", `{"method": "turnstile"}`)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Contains(t, w.Body.String(), "read-only")

		w = do(t, h, "POST", "/api/account-fixed", "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		assert.Equal(t, 2, decode[dashboard.AccountFixedResult](t, w.Body.String()).Released)
		task, err := f.store.Get(context.Background(), s.parked)
		require.NoError(t, err)
		assert.Equal(t, states.Submitting, task.State, "released for the next engine")

		assert.Equal(t, http.StatusNotFound, do(t, h, "GET", "/metrics", "").Code, "no Metrics, no /metrics")
		page := do(t, h, "GET", "/", "").Body.String()
		assert.Contains(t, page, `class="breaker none"`)
		assert.Contains(t, page, "No engine")
	})
}

func TestAPIRouting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		w := do(t, f.handler, "GET", "/api/nothing", "")
		assert.Equal(t, http.StatusNotFound, w.Code)
		assert.Contains(t, decode[map[string]string](t, w.Body.String())["error"], "no such endpoint")
		w = do(t, f.handler, "DELETE", "/api/tasks", "")
		assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
		assert.Equal(t, "GET, POST", w.Header().Get("Allow"))
		assert.Contains(t, decode[map[string]string](t, w.Body.String())["error"], "method not allowed")
		assert.Equal(t, http.StatusMethodNotAllowed, do(t, f.handler, "GET", "/api/account-fixed", "").Code)
		w = do(t, f.handler, "GET", "/static/style.css", "")
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Contains(t, w.Header().Get("Content-Type"), "text/css")
	})
}

// TestAPIListPages: a store larger than a page of the store's reads lists
// whole, as one array laid out as before, and page by page with after and
// order; the index page shows the newest MaxListed.
func TestAPIListPages(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "big.db"), &boltstore.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	const n = 2345
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = &persist.Task{ID: persist.NewID(), Ref: fmt.Sprintf("big-%d", i), Method: "turnstile"}
	}
	require.NoError(t, st.Create(ctx, tasks...))
	h := dashboard.New(dashboard.Config{Store: st})

	w := do(t, h, "GET", "/api/tasks", "")
	require.Equal(t, http.StatusOK, w.Code)
	all := decode[[]dashboard.Task](t, w.Body.String())
	require.Len(t, all, n)
	var whole bytes.Buffer
	enc := json.NewEncoder(&whole)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(all))
	assert.Equal(t, whole.String(), w.Body.String(), "the streamed array is the array")

	for _, order := range []string{"oldest", "newest"} {
		var ids []string
		after := ""
		for {
			w := do(t, h, "GET", "/api/tasks?limit=1000&order="+order+"&after="+after, "")
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			page := decode[[]dashboard.Task](t, w.Body.String())
			for _, task := range page {
				ids = append(ids, task.ID)
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
		require.Len(t, ids, n, order)
		for i, id := range ids {
			j := i
			if order == "newest" {
				j = n - 1 - i
			}
			require.Equal(t, tasks[j].ID, id, "%s %d", order, i)
		}
	}
	assert.Equal(t, "[]\n", do(t, h, "GET", "/api/tasks?after="+tasks[n-1].ID, "").Body.String())
	w = do(t, h, "GET", "/api/tasks?order=sideways", "")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), "order")

	page := do(t, h, "GET", "/", "").Body.String()
	assert.Contains(t, page, fmt.Sprintf("Showing the newest %d of %d matching tasks", dashboard.MaxListed, n))
	assert.Contains(t, page, tasks[n-1].ID, "the newest task is listed")
	assert.NotContains(t, page, tasks[n-1-dashboard.MaxListed].ID, "the task after the newest MaxListed is not")
	page = do(t, h, "GET", "/?q=big-23", "").Body.String()
	// big-23, big-230..239, big-2300..2344: 1 + 10 + 45.
	assert.Equal(t, 56, strings.Count(page, `href="/tasks/`))
}
