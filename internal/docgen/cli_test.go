package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/internal/cli"
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

	assert.Contains(t, doc, "\n## tool\n\n```text\nTool does things.\nSecond line of long help.\n\nUsage:\n", "Long help of root, verbatim")
	assert.Contains(t, doc, "\n## tool list\n\n```text\nList tasks\n\nUsage:\n  tool list [flags]\n", "Short stands in for a missing Long")
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

// TestRenderCLIMatchesHelp runs every documented command with --help and
// checks that its section shows exactly what the user sees.
func TestRenderCLIMatchesHelp(t *testing.T) {
	b, err := RenderCLI(fakeRoot())
	require.NoError(t, err)
	doc := string(b)
	paths := [][]string{nil, {"db"}, {"db", "check"}, {"db", "vacuum"}, {"list"}, {"solve"}}
	for _, args := range paths {
		name := strings.Join(append([]string{"tool"}, args...), " ")
		t.Run(name, func(t *testing.T) {
			root := fakeRoot()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append(args, "--help"))
			require.NoError(t, root.Execute())
			assert.Equal(t, out.String(), helpSection(t, doc, name))
		})
	}
}

// helpSection returns the code block under the heading "## name".
func helpSection(t *testing.T, doc, name string) string {
	t.Helper()
	start := "\n## " + name + "\n\n```text\n"
	i := strings.Index(doc, start)
	require.GreaterOrEqual(t, i, 0, "section %q", name)
	body := doc[i+len(start):]
	return body[:strings.Index(body, "\n```\n")+1]
}

// TestCaptchafsmPageMatchesHelp checks cli.md against the real tree: every
// command of the contract has a section, and each section is what
// `captchafsm CMD --help` prints.
func TestCaptchafsmPageMatchesHelp(t *testing.T) {
	b, err := renderCaptchafsmCLI()
	require.NoError(t, err)
	doc := string(b)

	for _, name := range []string{"demo", "solve", "run", "resume", "account-fixed", "list", "history", "replay", "errors", "diagram", "simulate"} {
		assert.Contains(t, doc, "\n## captchafsm "+name+"\n", "contract command %s", name)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !isCobraBuiltin(sub) {
				args := strings.Fields(sub.CommandPath())[1:]
				t.Run(sub.CommandPath(), func(t *testing.T) {
					root := cli.NewRoot(nil)
					var out bytes.Buffer
					root.SetOut(&out)
					root.SetErr(&out)
					root.SetArgs(append(args, "--help"))
					require.NoError(t, root.Execute())
					assert.Equal(t, out.String(), helpSection(t, doc, sub.CommandPath()))
				})
				walk(sub)
			}
		}
	}
	walk(cli.NewRoot(nil))
}
