package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRoot builds a small tree shaped like a real CLI, added out of order.
func fakeRoot() *cobra.Command {
	root := &cobra.Command{Use: "tool", Short: "Does things", Long: "Tool does things.\nSecond line of long help."}
	root.PersistentFlags().String("db", "tool.db", "database `PATH`")
	run := func(*cobra.Command, []string) error { return nil }

	solve := &cobra.Command{Use: "solve", Short: "Solve one", RunE: run, Example: "  tool solve --method post"}
	solve.Flags().String("method", "", "the method | a pipe")
	list := &cobra.Command{Use: "list", Short: "List tasks", RunE: run}
	hidden := &cobra.Command{Use: "secret", Short: "Hidden", Hidden: true, RunE: run}
	old := &cobra.Command{Use: "old", Short: "Old", Deprecated: "use list", RunE: run}
	group := &cobra.Command{Use: "db", Short: "Database tools"}
	group.AddCommand(
		&cobra.Command{Use: "vacuum", Short: "Compact the file", RunE: run},
		&cobra.Command{Use: "check", Short: "Check the file", RunE: run},
	)
	root.AddCommand(solve, list, hidden, old, group)
	return root
}

func TestRenderCLI(t *testing.T) {
	b, err := RenderCLI(fakeRoot())
	require.NoError(t, err)
	doc := string(b)

	assert.True(t, strings.HasPrefix(doc, Header))
	var headings []string
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "## ") {
			headings = append(headings, strings.TrimPrefix(line, "## "))
		}
	}
	assert.Equal(t, []string{"Commands", "tool", "tool db", "tool db check", "tool db vacuum", "tool list", "tool solve"}, headings,
		"root first, then every available command sorted by path; hidden, deprecated and cobra's own left out")

	assert.Contains(t, doc, "Tool does things.\nSecond line of long help.\n", "Long help of root")
	assert.Contains(t, doc, "\n## tool list\n\nList tasks\n", "Short stands in for a missing Long")
	assert.Contains(t, doc, "- [`tool db check`](#tool-db-check) — Check the file\n")
	assert.Contains(t, doc, "Examples:\n  tool solve --method post\n", "example of solve")
	assert.Contains(t, doc, "--method string   the method | a pipe", "pipes in code blocks stay as they are")
	assert.Contains(t, doc, "--db PATH", "inherited flags shown")
	assert.Contains(t, doc, "-h, --help", "help flags as Execute adds them")
	assert.Contains(t, doc, "completion  ", "root lists cobra's completion command")
	assert.NotContains(t, doc, "secret")
	assert.NotContains(t, doc, "## tool help")

	again, err := RenderCLI(fakeRoot())
	require.NoError(t, err)
	assert.Equal(t, doc, string(again), "deterministic")
	assertTablesWellFormed(t, doc)
}

func TestRenderCLIRefusesNonRoot(t *testing.T) {
	_, err := RenderCLI(nil)
	assert.ErrorContains(t, err, "nil root")
	root := fakeRoot()
	_, err = RenderCLI(root.Commands()[0])
	assert.ErrorContains(t, err, "not a root command")
}

func TestAnchor(t *testing.T) {
	tests := []struct{ in, want string }{
		{"captchafsm", "captchafsm"},
		{"captchafsm account-fixed", "captchafsm-account-fixed"},
		{"Tool DB_x.y", "tool-db_xy"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, anchor(tt.in))
	}
}
