package metrics_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/metrics"
	"github.com/captchafsm/captchafsm/states"
)

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)
var descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)

// TestDocsListEveryMetric keeps docs/metrics.md in step with the code:
// every metric has a row naming it, its type and each of its labels.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	require.NoError(t, err)
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := regexp.MustCompile("^\\| `(captchafsm_[a-z_]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}

	m := metrics.New(metrics.Options{Store: countFunc(func(context.Context) (map[states.State]int, error) { return nil, nil })})
	ch := make(chan *prometheus.Desc, 32)
	m.Describe(ch)
	metrics.NewGateway(nil).Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		n++
		name := descName.FindStringSubmatch(d.String())[1]
		row, ok := rows[name]
		if !assert.True(t, ok, "docs/metrics.md has no row for %s", name) {
			continue
		}
		if l := descLabels.FindStringSubmatch(d.String()); l != nil && l[1] != "" {
			for _, label := range strings.Split(l[1], ",") {
				assert.Contains(t, row, "`"+strings.TrimSpace(label)+"`", "%s: label %s undocumented", name, label)
			}
		}
		delete(rows, name)
	}
	assert.Equal(t, 9+6, n, "the engine's metrics and the gateway's")
	assert.Empty(t, rows, "docs/metrics.md documents metrics the code does not have")
}
