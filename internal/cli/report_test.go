package cli

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(2)
	tasks := w.tasks()
	r := w.run("report", tasks[0].ID, "--bad")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, "reported task "+tasks[0].ID+" (provider id "+tasks[0].ProviderID+") as bad")
	r = w.run("report", "b-1", "--good", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.JSONEq(t, `{"id":"`+tasks[1].ID+`","provider_id":"`+tasks[1].ProviderID+`","report":"good"}`, r.out)

	reports := map[string]string{}
	for _, rec := range w.sim.Sim.Ledger().Tasks {
		reports[itoa(rec.ID)] = rec.Report
	}
	assert.Equal(t, "bad", reports[tasks[0].ProviderID])
	assert.Equal(t, "good", reports[tasks[1].ProviderID])

	// The report is in the task's history, so a second one is refused
	// before anything is sent.
	h := w.run("history", tasks[0].ID)
	require.Equal(t, ExitOK, h.code, h.err)
	assert.Contains(t, h.out, "reported")
	sent := w.requests()
	r = w.run("report", tasks[0].ID, "--bad")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "reported already")
	assert.Equal(t, sent, w.requests(), "nothing sent")
}

func TestReportUsage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(1)
	ids := w.crashedTasks(1, nil)
	before := w.requests()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "b-0"}, "exactly one of --good or --bad"},
		{[]string{"report", "b-0", "--good", "--bad"}, "exactly one of --good or --bad"},
		{[]string{"report", ids[0], "--bad"}, "is Submitting: only a solved (Done) task can be reported"},
		{[]string{"report", "nope", "--bad"}, `task "nope": no task has this id or ref`},
	} {
		r := w.run(tc.args...)
		assert.Equal(t, ExitUsage, r.code, tc.args)
		assert.Contains(t, r.err, tc.want)
	}
	assert.Equal(t, before, w.requests(), "nothing sent")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
