package crashtest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// goodDB writes a database of 40 solved tasks, with their histories, and
// returns its bytes.
func goodDB(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.db")
	synctest.Test(t, func(t *testing.T) {
		sim := providersim.New(providersim.Config{Seed: 2, Mix: noAccountMix()})
		st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		require.NoError(t, err)
		eng, err := engine.Open(context.Background(), engine.Config{Store: st, API: simClient(t, sim)})
		require.NoError(t, err)
		_, _, err = eng.SubmitMany(context.Background(), requests("c", 40))
		require.NoError(t, err)
		require.NoError(t, eng.Drain(context.Background()))
		require.NoError(t, eng.Close())
		require.NoError(t, st.Close())
	})
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// crashed reports whether a command's stderr shows a Go panic or a fatal
// runtime error rather than an error message.
func crashed(stderr string) bool {
	for _, sign := range []string{"panic:", "goroutine ", "fatal error:", "SIGSEGV", "SIGBUS", "[signal"} {
		if strings.Contains(stderr, sign) {
			return true
		}
	}
	return false
}

// TestDamagedDatabaseThroughCLI gives the CLI damaged database files. A
// file it cannot trust is refused by every command with exit status 1,
// one line naming the file and a hint, and nothing is sent; damage inside
// the data (one flipped byte in any page) may let a command run or fail,
// but never panics or crashes the process.
func TestDamagedDatabaseThroughCLI(t *testing.T) {
	t.Parallel()
	good := goodDB(t)
	const page = 4096
	require.Zero(t, len(good)%page)
	sim := providersim.New(providersim.Config{Seed: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	env := []string{"CAPTCHAFSM_API_KEY=" + testKey, "CAPTCHAFSM_API_URL=" + srv.URL}
	tasks := filepath.Join(dir, "tasks.jsonl")
	require.NoError(t, os.WriteFile(tasks, []byte(`{"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":"https://example.com"},"ref":"x"}`+"\n"), 0o600))

	flip := func(offs ...int) []byte {
		b := bytes.Clone(good)
		for _, o := range offs {
			b[o] ^= 0xff
		}
		return b
	}
	const hint = "not a captchafsm database (or damaged); check the path, or move the file aside"
	refused := []struct {
		name string
		data []byte
	}{
		// Half of the pages that hold data: bbolt grows a file ahead of
		// them, so half the file can hold them all (it does in schema 3).
		{"truncated to half", good[:len(bytes.TrimRight(good, "\x00"))/2/page*page]},
		{"truncated to one page", good[:page]},
		{"truncated to 100 bytes", good[:100]},
		{"both meta pages flipped", flip(16+8, page+16+8)},
		{"text", []byte(strings.Repeat("not a database\n", 500))},
	}
	for _, tc := range refused {
		db := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".db")
		require.NoError(t, os.WriteFile(db, tc.data, 0o600))
		for _, args := range [][]string{{"list"}, {"list", "--json"}, {"history", "c-1"}, {"replay", "--all"},
			{"resume"}, {"run", "--from", tasks}, {"account-fixed"}, {"prune", "--older-than", "1h"}} {
			r := runCLI(t, env, append(args, "--db", db)...)
			assert.Equal(t, 1, r.code, "%s: %v: %s", tc.name, args, r.stderr)
			assert.Equal(t, fmt.Sprintf("captchafsm: --db %s: %s\n", db, hint), r.stderr, "%s: %v", tc.name, args)
			assert.Empty(t, r.stdout, "%s: %v", tc.name, args)
		}
		after, err := os.ReadFile(db)
		require.NoError(t, err)
		assert.Equal(t, tc.data, after, "%s: a refused file is left as it was", tc.name)
	}
	assert.Zero(t, sim.Ledger().Requests[providersim.KindSubmit]+sim.Ledger().Requests[providersim.KindPoll],
		"nothing is sent for a refused database")

	// One flipped byte at a time: in the page header and in the data of
	// every page the file uses.
	used := len(bytes.TrimRight(good, "\x00"))
	opened, failed := 0, 0
	for p := 0; p*page < used; p++ {
		for _, off := range []int{8, 16, 300, 2000} {
			at := p*page + off
			db := filepath.Join(dir, fmt.Sprintf("flip-%d.db", at))
			require.NoError(t, os.WriteFile(db, flip(at), 0o600))
			for _, args := range [][]string{{"list", "--json"}, {"history", "c-7", "--json"}, {"replay", "--all"}} {
				r := runCLI(t, env, append(args, "--db", db)...)
				require.False(t, crashed(r.stderr), "byte %d flipped: %v crashed:\n%s", at, args, r.stderr)
				okCodes := []int{0, 1}
				if args[0] == "replay" {
					okCodes = append(okCodes, 2) // a history that no longer replays
				}
				assert.Contains(t, okCodes, r.code, "byte %d flipped: %v: %s", at, args, r.stderr)
				if r.code != 0 {
					failed++
					assert.True(t, strings.HasPrefix(r.stderr, "captchafsm: ") || r.code == 2, "byte %d: %v: %q", at, args, r.stderr)
					if r.code == 1 {
						assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
					}
				} else {
					opened++
				}
			}
		}
	}
	t.Logf("%d pages of damage: %d commands ran, %d failed with an error; none crashed", used/page+1, opened, failed)
	assert.Positive(t, failed)
}
