package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/captchafsm/captchafsm/fsm"
)

func TestDiagram(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.run("diagram")
	assert.Equal(t, ExitOK, r.code)
	assert.Equal(t, fsm.Mermaid(), r.out)
	r = w.run("diagram", "--format", "dot")
	assert.Equal(t, ExitOK, r.code)
	assert.Equal(t, fsm.Dot(), r.out)
	r = w.run("diagram", "--format", "svg")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `--format "svg": want mermaid or dot`)
}
