package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
	"github.com/captchafsm/captchafsm/states"
)

func taskLines(n int, prefix string) string {
	var b strings.Builder
	for i := range n {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `{"method":"hcaptcha","params":{"sitekey":"k%d","pageurl":"https://a.example/%d"},"ref":"%s-%d"}`+"\n", i, i, prefix, i)
		case 1:
			fmt.Fprintf(&b, `{"method":"userrecaptcha","params":{"googlekey":"6Le-k%d","pageurl":"https://a.example/%d","invisible":true},"ref":"%s-%d"}`+"\n", i, i, prefix, i)
		default:
			fmt.Fprintf(&b, "\n"+`{"method":"turnstile","params":{"sitekey":"0x4AAA%d","pageurl":"https://a.example/%d"}}`+"\n", i, i)
		}
	}
	return b.String()
}

func TestRunJSONLinesAndIdempotence(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	// Every line has a ref, so running the file again adds nothing.
	var b strings.Builder
	for i := range 9 {
		fmt.Fprintf(&b, `{"method":"hcaptcha","params":{"sitekey":"k%d","pageurl":"https://a.example/%d"},"ref":"r-%d"}`+"\n", i, i, i)
	}
	file := w.file("tasks.jsonl", b.String())
	r := w.run(withPolicy(w, "run", "--from", file, "--json")...)
	require.Equal(t, ExitOK, r.code, r.err)
	lines := decodeLines(t, r.out)
	require.Len(t, lines, 9)
	refs := map[string]bool{}
	for _, l := range lines {
		assert.ElementsMatch(t, []string{"id", "ref", "state", "token", "code", "submits", "polls", "resubmits", "cost"}, keysOf(l))
		assert.Equal(t, "Done", l["state"])
		assert.NotEmpty(t, l["token"])
		refs[l["ref"].(string)] = true
	}
	assert.Len(t, refs, 9)
	assert.Contains(t, r.err, "9 tasks: 9 Done, 0 Failed, 0 NeedsAccountFix")
	submits := w.sim.Sim.Ledger().Requests[providersim.KindSubmit]
	assert.Equal(t, 9, submits)

	// The same file again: no task added, nothing sent, the results again.
	r = w.run(withPolicy(w, "run", "--from", file, "--json")...)
	require.Equal(t, ExitOK, r.code, r.err)
	assert.Contains(t, r.err, "0 of 9 tasks added; 9 refs were already in the database")
	assert.Len(t, decodeLines(t, r.out), 9)
	assert.Len(t, w.tasks(), 9)
	assert.Equal(t, submits, w.sim.Sim.Ledger().Requests[providersim.KindSubmit], "no submit sent again")
}

func TestRunTextAndStdin(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	r := w.runCtx(t.Context(), strings.NewReader(taskLines(5, "s")), withPolicy(w, "run", "--from", "-")...)
	require.Equal(t, ExitOK, r.code, r.err)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	require.Len(t, lines, 5)
	for _, l := range lines {
		f := strings.Split(l, "\t")
		require.Len(t, f, 4, l)
		assert.Equal(t, "Done", f[2])
	}
}

func TestRunBadLinesNameTheLine(t *testing.T) {
	t.Parallel()
	good := `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"}}`
	for _, tc := range []struct {
		name, bad, want string
		line            int
	}{
		{"invalid JSON", `{"method": "hcaptcha",`, "not a task object", 3},
		{"unknown field", `{"method":"hcaptcha","parms":{}}`, `unknown field "parms"`, 3},
		{"missing parameter", `{"method":"userrecaptcha","params":{"pageurl":"https://a.example"}}`, "params.googlekey: is required for method userrecaptcha", 3},
		{"no method", `{"params":{}}`, "method: is required", 3},
		{"object parameter", `{"method":"x","params":{"a":{"b":1}}}`, "params.a: want a string, number or boolean", 3},
		{"array line", `[1,2]`, "not a task object", 3},
		{"repeated ref", `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"},"ref":"one"}`, `ref "one" repeats line 1`, 3},
		{"unknown method", `{"method":"x","ref":"two"}`, "method: x is not a method of the API; --force-method sends it anyway", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{})
			first := strings.Replace(good, `{"method"`, `{"ref":"one","method"`, 1)
			file := w.file("tasks.jsonl", first+"\n"+good+"\n"+tc.bad+"\n"+good+"\n")
			r := w.run(withPolicy(w, "run", "--from", file)...)
			assert.Equal(t, ExitUsage, r.code)
			assert.Contains(t, r.err, fmt.Sprintf("--from %s: line %d: ", file, tc.line))
			assert.Contains(t, r.err, tc.want)
			assert.Equal(t, 1, strings.Count(r.err, "\n"), r.err)
			assert.Zero(t, w.requests(), "nothing sent")
		})
	}
	t.Run("unreadable file", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		r := w.run("run", "--from", w.dir+"/none.jsonl")
		assert.Equal(t, ExitUsage, r.code)
		assert.Contains(t, r.err, "none.jsonl: no such file")
	})
	t.Run("empty file", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		r := w.run("run", "--from", w.file("e.jsonl", "\n\n"))
		assert.Contains(t, r.err, "no tasks in the file")
	})
	t.Run("no --from", func(t *testing.T) {
		t.Parallel()
		r := newWorld(t).run("run")
		assert.Equal(t, ExitUsage, r.code)
		assert.Contains(t, r.err, "--from FILE is required")
	})
}

// TestRunExitStatus: 2 when some task failed, 3 when some needs an account
// fix, which wins over 2.
func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mix  providersim.Mix
		exit int
		want states.State
	}{
		{"failed", providersim.Mix{Submit: map[string]float64{}, Poll: map[string]float64{"ERROR_CAPTCHA_UNSOLVABLE": 1}}, ExitFailed, states.Failed},
		{"needs fix", providersim.Mix{Submit: map[string]float64{"ERROR_IP_NOT_ALLOWED": 1}, Poll: map[string]float64{}}, ExitNeedsAccountFix, states.NeedsAccountFix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{Mix: tc.mix})
			r := w.run(withPolicy(w, "run", "--json", "--from", w.file("t.jsonl", taskLines(4, "x")))...)
			assert.Equal(t, tc.exit, r.code, r.err)
			for _, l := range decodeLines(t, r.out) {
				assert.Equal(t, string(tc.want), l["state"])
			}
		})
	}
	t.Run("3 wins over 2", func(t *testing.T) {
		t.Parallel()
		// Half the submits fail for good, the other half hit an account error.
		w := newWorld(t).withSim(providersim.Config{Seed: 3, Mix: providersim.Mix{
			Submit: map[string]float64{"ERROR_BAD_PARAMETERS": 0.5, "ERROR_ZERO_BALANCE": 0.5}, Poll: map[string]float64{}}})
		r := w.run(withPolicy(w, "run", "--json", "--from", w.file("t.jsonl", taskLines(6, "x")))...)
		assert.Equal(t, ExitNeedsAccountFix, r.code, r.err)
		got := map[string]int{}
		for _, l := range decodeLines(t, r.out) {
			got[l["state"].(string)]++
		}
		assert.Positive(t, got["NeedsAccountFix"])
		assert.Positive(t, got["Failed"])
		assert.Equal(t, 6, got["Failed"]+got["NeedsAccountFix"])
	})
}

// TestRunUnknownMethod: a line whose method the client does not know (a
// typo such as hcapcha) is refused as solve refuses it, naming the line and
// the method meant, before anything is stored or sent; --force-method
// sends such lines with one warning per method, and the provider's
// ERROR_NO_SUCH_METHOD fails them (issue 12 point 3, for run as for solve).
func TestRunUnknownMethod(t *testing.T) {
	t.Parallel()
	w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
	file := w.file("tasks.jsonl", taskLines(3, "a")+
		`{"method":"hcapcha","params":{"sitekey":"k","pageurl":"https://a.example/x"},"ref":"typo-1"}`+"\n"+
		`{"method":"hcapcha","params":{"sitekey":"k","pageurl":"https://a.example/y"},"ref":"typo-2"}`+"\n")
	r := w.run(withPolicy(w, "run", "--from", file)...)
	assert.Equal(t, ExitUsage, r.code, r.err)
	assert.Equal(t, "captchafsm: --from "+file+": line 5: method: hcapcha is not a method of the API (did you mean hcaptcha?); --force-method sends it anyway\n", r.err)
	assert.Zero(t, w.requests(), "nothing sent")
	assert.Empty(t, w.tasks(), "nothing stored")

	r = w.run(withPolicy(w, "run", "--from", file, "--force-method")...)
	assert.Equal(t, ExitFailed, r.code, r.err)
	assert.Equal(t, 1, strings.Count(r.err, "warning: --from "+file+": line 5: method hcapcha is not a method of the API (did you mean hcaptcha?); sent as --force-method asks"), r.err)
	assert.NotContains(t, r.err, "line 6", "one warning per method")
	for _, task := range w.tasks() {
		if task.Method == "hcapcha" {
			assert.Equal(t, states.Failed, task.State)
			assert.Equal(t, "ERROR_NO_SUCH_METHOD", task.Code)
		} else {
			assert.Equal(t, states.Done, task.State)
		}
	}
}
