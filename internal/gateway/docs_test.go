package gateway_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/gateway"
)

// answerTable renders AnswerRules as docs/gateway.md shows them.
func answerTable() string {
	var b strings.Builder
	b.WriteString("| task | its code | answered | error_text says |\n|---|---|---|---|\n")
	for _, r := range gateway.AnswerRules() {
		answer := "`" + r.Answer + "`"
		if r.Answer == "" {
			answer = "the code that opened the breaker, mapped by these rules (`ERROR_ZERO_BALANCE` when unknown)"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", r.State, r.Code, answer, r.Why)
	}
	return b.String()
}

// TestDocsListEveryAnswerRule keeps docs/gateway.md's table of translated
// codes the same as the data.
func TestDocsListEveryAnswerRule(t *testing.T) {
	doc, err := os.ReadFile("../../docs/gateway.md")
	require.NoError(t, err)
	require.Contains(t, string(doc), answerTable(),
		"docs/gateway.md's table of answer rules differs from gateway.AnswerRules: replace it with\n%s", answerTable())
}
