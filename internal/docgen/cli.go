package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// RenderCLI returns docs/cli.md: the help of root and of every command
// under it, sorted by command path. It prepares root as Execute would (the
// help command, the completion command, a --help flag on every command), so
// each section shows what `captchafsm CMD --help` prints. Cobra's own help
// and completion commands are listed under root but not expanded, and hidden
// or deprecated commands are left out. root is modified: pass a fresh tree.
func RenderCLI(root *cobra.Command) ([]byte, error) {
	if root == nil {
		return nil, fmt.Errorf("docgen: cli.md: nil root command")
	}
	if root.HasParent() {
		return nil, fmt.Errorf("docgen: cli.md: %q is not a root command", root.CommandPath())
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()

	cmds := []*cobra.Command{root}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || isCobraBuiltin(sub) {
				continue
			}
			cmds = append(cmds, sub)
			walk(sub)
		}
	}
	walk(root)
	sort.SliceStable(cmds[1:], func(i, j int) bool { return cmds[1+i].CommandPath() < cmds[1+j].CommandPath() })

	p := newPage("Command-line reference")
	p.para("The help of every %s command, as %s prints it. This page is generated from the commands' definitions.",
		code(root.Name()), code(root.Name()+" CMD --help"))
	p.heading(2, "Commands")
	p.WriteString("\n")
	for _, c := range cmds {
		fmt.Fprintf(p, "- [%s](#%s) — %s\n", code(c.CommandPath()), anchor(c.CommandPath()), c.Short)
	}
	for _, c := range cmds {
		c.InitDefaultHelpFlag()
		p.heading(2, c.CommandPath())
		// As cobra's help template: the long text (else the short), a blank
		// line, the usage. Kept verbatim in a code block, since help text
		// is not Markdown ("***", "--flag" and indented JSON would change).
		help := strings.TrimSpace(c.Long)
		if help == "" {
			help = strings.TrimSpace(c.Short)
		}
		if help != "" {
			help += "\n\n"
		}
		p.fence("text", help+strings.TrimRight(c.UsageString(), "\n")+"\n")
	}
	return p.Bytes(), nil
}

// isCobraBuiltin reports whether c is a command cobra adds on its own.
func isCobraBuiltin(c *cobra.Command) bool {
	if !c.HasParent() || c.Parent().HasParent() {
		return false
	}
	return c.Name() == "help" || c.Name() == "completion"
}

// anchor returns the GitHub anchor of a heading: lower case, spaces as
// hyphens, punctuation other than '-' and '_' dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}
