package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/transitions"
)

func TestErrorsJSON(t *testing.T) {
	t.Parallel()
	r := newWorld(t).run("errors", "--json")
	require.Equal(t, ExitOK, r.code, r.err)
	var list []map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.out), &list))
	cat := transitions.Catalogue()
	require.Len(t, list, len(cat))
	classes := map[string]bool{"permanent": true, "transient": true, "account": true, "not_ready": true, "resubmit": true}
	for i, e := range list {
		for _, k := range []string{"code", "class", "where", "meaning", "fix", "retry_delay"} {
			assert.Contains(t, e, k)
		}
		assert.Equal(t, cat[i].Code, e["code"])
		assert.True(t, classes[e["class"]], e["class"])
		if e["retry_delay"] != "" {
			d, err := time.ParseDuration(e["retry_delay"])
			require.NoError(t, err)
			assert.Equal(t, cat[i].RetryDelay, d)
		}
	}
	byCode := map[string]map[string]string{}
	for _, e := range list {
		byCode[e["code"]] = e
	}
	assert.Equal(t, "5s", byCode["ERROR_NO_SLOT_AVAILABLE"]["retry_delay"])
	assert.Equal(t, "", byCode["ERROR_BAD_PARAMETERS"]["retry_delay"])
	assert.Equal(t, "10s", byCode["MAX_USER_TURN"]["ban"])
	assert.Equal(t, "3s-10s", byCode["ERROR_TOO_MUCH_REQUESTS"]["backoff"])
}

func TestErrorsTable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.run("errors")
	require.Equal(t, ExitOK, r.code, r.err)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	assert.Len(t, lines, len(transitions.Catalogue())+1)
	assert.Equal(t, []string{"CODE", "CLASS", "WHERE", "DELAY", "MEANING", "FIX"}, strings.Fields(lines[0]))
	assert.Contains(t, r.out, "ERROR: 1001")

	r = w.run("errors", "ERROR_ZERO_BALANCE")
	require.Equal(t, ExitOK, r.code)
	lines = strings.Split(strings.TrimSpace(r.out), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[1], "account")
	assert.Contains(t, lines[1], "account-fixed")

	r = w.run("errors", "ERROR_NOPE")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.err, `errors "ERROR_NOPE": not in the catalogue`)
}
