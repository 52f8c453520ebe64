package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// solvedDB fills the world's database through `run`: n tasks with refs
// b-0..b-(n-1), all Done.
func (w *world) solvedDB(n int) {
	w.t.Helper()
	if w.sim == nil {
		w.withSim(providersim.Config{Mix: providersim.NoErrors()})
	}
	var b strings.Builder
	for i := range n {
		b.WriteString(`{"method":"turnstile","params":{"sitekey":"0x4A","pageurl":"https://a.example"},"ref":"b-` + string(rune('0'+i)) + `"}` + "\n")
	}
	r := w.run(withPolicy(w, "run", "--from", w.file("solved.jsonl", b.String()))...)
	require.Equal(w.t, ExitOK, r.code, r.err)
}

func TestListTable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(3)
	w.crashedTasks(1, nil)
	r := w.run("list")
	require.Equal(t, ExitOK, r.code, r.err)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	require.Len(t, lines, 5)
	assert.Equal(t, []string{"ID", "REF", "STATE", "CODE", "SUBMITS", "POLLS", "RESUBMITS", "CREATED", "UPDATED"}, strings.Fields(lines[0]))
	for _, l := range lines[1:4] {
		f := strings.Fields(l)
		assert.Equal(t, "Done", f[2])
		assert.True(t, strings.HasPrefix(f[1], "b-"))
	}
	assert.Equal(t, "Submitting", strings.Fields(lines[4])[2])
	// Columns are aligned: every STATE starts at the same offset.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		assert.Regexp(t, `^(Done|Submitting)`, l[col:])
	}

	r = w.run("list", "--state", "submitting")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Len(t, strings.Split(strings.TrimSpace(r.out), "\n"), 2)

	r = w.run("list", "--state", "Failed")
	assert.Equal(t, ExitOK, r.code)
	assert.Contains(t, r.err, `no tasks in state "Failed"`)

	r = w.run("list", "--state", "Finished")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `--state "Finished": not a state`)
}

func TestListJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(2)
	r := w.run("list", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &list))
	require.Len(t, list, 2)
	for _, task := range list {
		for _, k := range []string{"id", "ref", "state", "code", "submits", "created", "updated", "polls", "resubmits", "token"} {
			assert.Contains(t, task, k)
		}
		_, err := time.Parse(time.RFC3339Nano, task["created"].(string))
		assert.NoError(t, err)
		assert.Equal(t, "", task["code"], "empty fields are present, not omitted")
	}
	r = w.run("list", "--json", "--state", "Failed")
	assert.Equal(t, "[]\n", r.out, "an empty list is an empty array")
}

func TestListRefusesLockedAndForeignFiles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(1)
	s := w.store() // another "process" holds the file
	r := w.run("list")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, EnvDB+" "+w.db+": database in use by another process")
	// The holder may be any command that keeps the file open while it
	// runs, and the two that serve /api/tasks are both named.
	for _, holder := range []string{"run", "solve", "resume", "serve", "gateway", "demo", "/api/tasks"} {
		assert.Contains(t, r.err, holder, "the message names the commands that hold a database")
	}
	assert.Equal(t, 1, strings.Count(r.err, "\n"))
	require.NoError(t, s.Close())

	foreign := w.file("notes.txt", strings.Repeat("not a database\n", 500))
	r = w.run("list", "--db", foreign)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, "--db "+foreign+": not a captchafsm database")
}
