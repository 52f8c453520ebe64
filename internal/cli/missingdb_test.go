package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// TestEveryCommandOnAMissingDatabase: only the commands that take new
// tasks (run, solve, serve, gateway; demo into a fresh file of its own) may create a
// database. Every other command that opens one refuses a missing file with
// exit 1 and one line naming it, and leaves no file behind: a mistyped
// --db, or resume in the wrong directory, must not report on an empty
// database as if it were the real one. A command added later must be
// classified here.
func TestEveryCommandOnAMissingDatabase(t *testing.T) {
	t.Parallel()
	const (
		refuses = iota // needs an existing database
		creates        // takes new tasks: may start a database
		none           // opens no database
	)
	cmds := map[string]struct {
		kind int
		args []string
	}{
		"resume":        {refuses, []string{"resume"}},
		"account-fixed": {refuses, []string{"account-fixed"}},
		"list":          {refuses, []string{"list"}},
		"history":       {refuses, []string{"history", "some-task"}},
		"replay":        {refuses, []string{"replay", "--all"}},
		"report":        {refuses, []string{"report", "some-task", "--good"}},
		"prune":         {refuses, []string{"prune", "--older-than", "1d"}},
		"run":           {creates, nil},
		"solve":         {creates, nil},
		"serve":         {creates, nil}, // and says so: TestServeSaysItCreatedADatabase
		"gateway":       {creates, nil}, // takes tasks from bots, as serve
		"demo":          {creates, nil}, // a fresh file of its own, never $CAPTCHAFSM_DB
		"demo-engine":   {creates, nil}, // demo --crash's child, on demo's file
		"errors":        {none, []string{"errors"}},
		"diagram":       {none, []string{"diagram"}},
		"balance":       {none, []string{"balance"}},
		"simulate":      {none, []string{"simulate"}},
	}
	for _, c := range NewRoot(nil).Commands() {
		tc, ok := cmds[c.Name()]
		if !assert.True(t, ok, "command %q: say whether it may create a database", c.Name()) || tc.args == nil {
			continue
		}
		for _, how := range []string{"env", "flag"} {
			w := newWorld(t)
			missing := filepath.Join(w.dir, "sub", "missing.db")
			args := tc.args
			source := "--db"
			if how == "env" {
				w.env[EnvDB] = missing
				source = EnvDB
			} else {
				args = append(args[:len(args):len(args)], "--db", missing)
			}
			// simulate serves until its context ends: an ended one lets it
			// start and stop at once.
			ctx, cancel := context.WithCancel(context.Background())
			if c.Name() == "simulate" {
				cancel()
			}
			r := w.runCtx(ctx, nil, args...)
			cancel()
			if tc.kind == refuses {
				assert.Equal(t, ExitUsage, r.code, "%v (%s): %s", args, how, r.err)
				assert.Equal(t, "captchafsm: "+source+" "+missing+": no such file; this command creates no database (run, solve, serve and gateway do): check the path\n", r.err, args)
				assert.Empty(t, r.out, args)
			}
			_, err := os.Stat(missing)
			assert.ErrorIs(t, err, os.ErrNotExist, "%v (%s): a database file was created", args, how)
			_, err = os.Stat(filepath.Dir(missing))
			assert.ErrorIs(t, err, os.ErrNotExist, "%v (%s): a directory was created", args, how)
		}
	}
}

// TestResumeOnAMissingDatabase: the case. resume where no database
// is exits 1, creates nothing and sends nothing, instead of creating one
// and saying "nothing to resume"; once run made it, resume opens it.
func TestResumeOnAMissingDatabase(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	r := w.run(withPolicy(w, "resume")...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, EnvDB+" "+w.db+": no such file")
	assert.NotContains(t, r.err, "nothing to resume")
	_, err := os.Stat(w.db)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Zero(t, w.requests())

	w.solvedDB(1)
	r = w.run(withPolicy(w, "resume")...)
	assert.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.err, "nothing to resume")
}

// TestServeSaysItCreatedADatabase: serve takes new tasks, so it may start
// on a new file, but it says so in its log.
func TestServeSaysItCreatedADatabase(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	s := w.startServe()
	assert.Contains(t, s.stderr.String(), "created a new empty database")
	assert.Equal(t, ExitOK, s.stop())
	_, err := os.Stat(w.db)
	require.NoError(t, err)

	s = w.startServe()
	assert.NotContains(t, s.stderr.String(), "created a new empty database", "an existing database is not new")
	assert.Equal(t, ExitOK, s.stop())
}
