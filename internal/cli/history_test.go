package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider"
)

func TestHistoryByIDAndRef(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.solvedDB(1)
	id := w.tasks()[0].ID
	byID := w.run("history", id)
	require.Equal(t, ExitOK, byID.code, byID.err)
	byRef := w.run("history", "b-0")
	require.Equal(t, ExitOK, byRef.code, byRef.err)
	assert.Equal(t, byID.out, byRef.out)
	assert.Contains(t, byID.out, "task      "+id)
	assert.Contains(t, byID.out, "ref       b-0")
	for _, step := range []string{"[*] → Submitting", "Submitting → Submitting  submit_sending", "Submitting → Polling", "Polling → Done"} {
		assert.Contains(t, byID.out, step)
	}
	assert.NotContains(t, byID.out, "possibly charged", "nothing was")
	header := strings.Fields(strings.Split(byID.out, "SEQ")[1])
	assert.Equal(t, []string{"TIME", "!", "FROM", "→", "TO", "EVENT", "CODE", "DETAIL"}, header[:8])

	r := w.run("history", "nope")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `task "nope": no task has this id or ref`)
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	p := provider.RedactParams(map[string]string{"proxy": "u:secret@1.2.3.4:80", "body": "aGVsbG8=",
		"pageurl": "https://me:pw@site.example/x", "sitekey": "k"})
	assert.Equal(t, map[string]string{"proxy": "***:***@1.2.3.4:80", "body": "<8 characters of base64>",
		"pageurl": "https://me:xxxxx@site.example/x", "sitekey": "k"}, p)
	assert.Equal(t, "proxy ***:***@1.2.3.4:80 refused", provider.RedactText("proxy u:secret@1.2.3.4:80 refused"))
	assert.Equal(t, "plain", provider.RedactText("plain"))
}
