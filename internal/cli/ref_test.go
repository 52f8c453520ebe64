package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
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

// TestSolveReusedRef: a ref that names a task with another request is
// refused (exit 1, the ref named, nothing sent); the same request attaches
// to the task and prints its token without a request (issue 11, point 6).
func TestSolveReusedRef(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	img := w.file("captcha.png", string(pngBytes(t, 30, 10)))
	first := w.run(withPolicy(w, "solve", "--image", img, "--ref", "img-0")...)
	require.Equal(t, ExitOK, first.code, first.err)
	sent := w.requests()

	r := w.run(withPolicy(w, "solve", "--ref", "img-0", "--method", "turnstile",
		"--param", "sitekey=zzz", "--param", "pageurl=https://other.example")...)
	assert.Equal(t, ExitUsage, r.code, r.err)
	assert.Contains(t, r.err, "img-0")
	assert.Empty(t, r.out, "no token printed")
	assert.Equal(t, sent, w.requests(), "nothing sent")
	require.Len(t, w.tasks(), 1, "nothing stored")

	again := w.run(withPolicy(w, "solve", "--image", img, "--ref", "img-0")...)
	require.Equal(t, ExitOK, again.code, again.err)
	assert.Equal(t, first.out, again.out, "the same request attaches: the same token")
	assert.Equal(t, sent, w.requests(), "an attached, settled task sends nothing")

	h := w.run("history", "img-0")
	require.Equal(t, ExitOK, h.code, h.err)
	assert.Contains(t, h.out, "solved")
	tasks := w.tasks()
	assert.Equal(t, states.Done, tasks[0].State)
}

// TestRunRefNamingAnotherRequest: a line whose ref names a task of the
// database with another request is refused, naming the line, before any
// line of the file is stored (in a large file too, recorded in chunks);
// a line with the same request attaches to the task.
func TestRunRefNamingAnotherRequest(t *testing.T) {
	t.Parallel()
	for _, lines := range []int{10, recordChunk + 10} {
		t.Run(fmt.Sprint(lines), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.solvedDB(1) // ref b-0: turnstile, sitekey 0x4A, pageurl https://a.example
			sent := w.requests()
			var b strings.Builder
			for i := 1; i <= lines; i++ {
				switch i {
				case 7:
					b.WriteString(`{"method":"turnstile","params":{"sitekey":"0x4A","pageurl":"https://other.example"},"ref":"b-0"}` + "\n")
				default:
					fmt.Fprintf(&b, `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example/%d"},"ref":"n-%d"}`+"\n", i, i)
				}
			}
			file := w.file("tasks.jsonl", b.String())
			r := w.run(withPolicy(w, "run", "--from", file)...)
			assert.Equal(t, ExitUsage, r.code, r.err)
			assert.Contains(t, r.err, fmt.Sprintf(`captchafsm: --from %s: line 7: engine: ref names another request: ref "b-0" is task `, file))
			assert.Equal(t, 1, strings.Count(r.err, "\n"), r.err)
			assert.Len(t, w.tasks(), 1, "nothing of the file stored")
			assert.Equal(t, sent, w.requests(), "nothing sent")
		})
	}
}
