package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// TestPostgresBackend: --db postgres://… runs, lists and replays on a
// PostgreSQL store (a throwaway schema); the URL's password never shows.
func TestPostgresBackend(t *testing.T) {
	url := pgstoretest.WithSchema(t, pgstoretest.Schema(t))
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	var b strings.Builder
	for i := range 6 {
		fmt.Fprintf(&b, `{"method":"turnstile","params":{"sitekey":"k%d","pageurl":"https://a.example/%d"},"ref":"pg-%d"}`+"\n", i, i, i)
	}
	file := w.file("tasks.jsonl", b.String())
	r := w.run(withPolicy(w, "run", "--db", url, "--from", file, "--json")...)
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Len(t, decodeLines(t, r.out), 6)

	r = w.run("list", "--db", url, "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Equal(t, 6, strings.Count(r.out, `"state": "Done"`)+strings.Count(r.out, `"state":"Done"`))

	r = w.run("replay", "--all", "--db", url)
	require.Equal(t, ExitOK, r.code, r.err)

	r = w.run("history", "pg-0", "--db", url, "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.out, `"event": "solved"`)

	// Prune on PostgreSQL: no compaction, the tables' size reported.
	r = w.run("prune", "--older-than", "1ns", "--db", url, "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var pr pruneJSON
	require.NoError(t, json.Unmarshal([]byte(r.out), &pr))
	assert.Equal(t, 6, pr.Pruned)
	assert.Positive(t, pr.UsedBefore)
	assert.Positive(t, pr.UsedAfter, "the tables are still there")
	assert.Zero(t, pr.FileSize)

	// A bad password: one line, the password redacted.
	bad := strings.Replace(url, "postgres://postgres@", "postgres://postgres:s3cr3tpw@", 1)
	bad = strings.Replace(bad, "127.0.0.1:", "127.0.0.1:1", 1) // nothing listens there
	r = w.run("list", "--db", bad)
	assert.Equal(t, ExitUsage, r.code)
	assert.NotContains(t, r.err, "s3cr3tpw")
	assert.Contains(t, r.err, "--db")
}
