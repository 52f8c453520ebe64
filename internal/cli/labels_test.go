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

// TestRunFromLabels: a line of run --from may carry labels, kept with its
// task and never sent; bad labels are refused with the line and the field
// before anything is stored.
func TestRunFromLabels(t *testing.T) {
	t.Parallel()
	t.Run("kept", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
		file := w.file("t.jsonl", `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"},"ref":"a","labels":{"order":"42","callback":"http://127.0.0.1:9/x"}}`+"\n")
		r := w.run(withPolicy(w, "run", "--from", file, "--json")...)
		require.Equal(t, ExitOK, r.code, r.err)
		tasks := w.tasks()
		require.Len(t, tasks, 1)
		assert.Equal(t, map[string]string{"order": "42", "callback": "http://127.0.0.1:9/x"}, tasks[0].Options.Labels)
		assert.NotContains(t, tasks[0].Params, "labels")
	})
	for _, tc := range []struct {
		name, labels, want string
	}{
		{"empty key", `{"":"v"}`, `labels: key "": 1 to 64 bytes`},
		{"too large", `{"k":"` + strings.Repeat("v", 5000) + `"}`, "labels: 5001 bytes, at most 4096"},
		{"not text", `{"k":1}`, "not a task object: labels: want string, got number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t).withSim(providersim.Config{Mix: providersim.NoErrors()})
			file := w.file("t.jsonl", `{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"}}`+"\n"+
				`{"method":"hcaptcha","params":{"sitekey":"k","pageurl":"https://a.example"},"labels":`+tc.labels+`}`+"\n")
			r := w.run(withPolicy(w, "run", "--from", file)...)
			assert.Equal(t, ExitUsage, r.code)
			assert.Equal(t, fmt.Sprintf("captchafsm: --from %s: line 2: %s\n", file, tc.want), r.err)
			assert.Zero(t, w.requests(), "nothing sent")
			_, err := os.Stat(w.db)
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing stored")
		})
	}
}
