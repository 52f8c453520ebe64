package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

// TestBadRefsAreRefusedBeforeAnything: a ref no store can keep (too long,
// a NUL byte) is refused with the line and the field, before the database
// is even opened, in a small file and in a large one (recorded in chunks)
// alike. The 2,000-byte ref failed with an error naming a task id
// that was never stored, and no line.
func TestBadRefsAreRefusedBeforeAnything(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("r", 2000)
	for _, tc := range []struct {
		name  string
		lines int // of the file; the bad one is the last but one
		ref   string
		want  string
	}{
		{"2,000 bytes", 3, long, "ref: longer than 1024 bytes (got 2000)"},
		{"1,025 bytes", 3, long[:1025], "ref: longer than 1024 bytes (got 1025)"},
		{"NUL", 3, `a\u0000b`, "ref: holds a NUL byte"},
		{"2,000 bytes in a large file", recordChunk + 500, long, "ref: longer than 1024 bytes (got 2000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
			var b strings.Builder
			for i := 1; i <= tc.lines; i++ {
				ref := fmt.Sprintf("r-%d", i)
				if i == tc.lines-1 {
					ref = tc.ref
				}
				fmt.Fprintf(&b, `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example/%d"},"ref":"%s"}`+"\n", i, ref)
			}
			file := w.file("tasks.jsonl", b.String())
			r := w.run(withPolicy(w, "run", "--from", file)...)
			assert.Equal(t, ExitUsage, r.code)
			assert.Equal(t, fmt.Sprintf("captchafsm: --from %s: line %d: %s\n", file, tc.lines-1, tc.want), r.err)
			assert.Empty(t, r.out)
			assert.Zero(t, w.requests(), "nothing sent")
			_, err := os.Stat(w.db)
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing stored: the database is not even created")
		})
	}
	t.Run("solve --ref", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
		r := w.run(withPolicy(w, append(hcaptchaArgs, "--ref", long)...)...)
		assert.Equal(t, ExitUsage, r.code)
		assert.Equal(t, "captchafsm: --ref: longer than 1024 bytes (got 2000)\n", r.err)
		assert.Zero(t, w.requests())
		_, err := os.Stat(w.db)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("1,024 bytes is a ref", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
		ref := strings.Repeat("é", 512)
		file := w.file("t.jsonl", `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"},"ref":"`+ref+`"}`+"\n")
		r := w.run(withPolicy(w, "run", "--from", file, "--json")...)
		require.Equal(t, ExitOK, r.code, r.err)
		tasks := w.tasks()
		require.Len(t, tasks, 1)
		assert.Equal(t, ref, tasks[0].Ref)
	})
}
