package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

// TestInterruptThenResume: a signal while tasks are polled ends run with
// 130; the tasks stay in the database and resume polls them to the end
// without sending them again.
func TestInterruptThenResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// Solved well after the first poll, even on a loaded machine: the
	// signal must find tasks polling.
	quick := providersim.Dist{Min: 500 * time.Millisecond, Max: 500 * time.Millisecond}
	sim := providersim.New(providersim.Config{Mix: providersim.NoErrors(),
		SolveTime: map[string]providersim.Dist{"hcaptcha": quick, "userrecaptcha": quick, "turnstile": quick}})
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/res.php") {
			once.Do(cancel) // the "Ctrl-C", as the first poll arrives
		}
		sim.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	w.env[EnvAPIURL] = srv.URL

	r := w.runCtx(ctx, nil, withPolicy(w, "run", "--from", w.file("t.jsonl", taskLines(3, "i")))...)
	assert.Equal(t, ExitInterrupted, r.code, r.err)
	assert.Contains(t, r.err, "interrupted: unfinished tasks stay in the database; `captchafsm resume` continues them")
	tasks := w.tasks()
	require.Len(t, tasks, 3, "every task of the file was recorded")
	unfinished := 0
	accepted := map[string]string{} // id → provider id, of tasks in flight at the provider
	for _, task := range tasks {
		if !task.State.Terminal() {
			unfinished++
		}
		if task.State == states.Polling {
			accepted[task.ID] = task.ProviderID
		}
	}
	assert.Positive(t, unfinished)
	assert.NotEmpty(t, accepted, "the signal came with the first poll")
	submits := sim.Ledger().Requests[providersim.KindSubmit]

	r = w.run(withPolicy(w, "resume", "--json")...)
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Len(t, decodeLines(t, r.out), unfinished, "resume reports the tasks it drove")
	for _, task := range w.tasks() {
		assert.Equal(t, states.Done, task.State)
		if pid, ok := accepted[task.ID]; ok {
			assert.Equal(t, pid, task.ProviderID, "accepted tasks are polled, never sent again")
			assert.Equal(t, 1, task.Submits)
		}
	}
	notAccepted := unfinished - len(accepted)
	assert.Equal(t, submits+notAccepted, sim.Ledger().Requests[providersim.KindSubmit],
		"resume sent only the tasks that were not accepted yet")
}
