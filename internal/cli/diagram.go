package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/fsm"
)

func (a *app) diagramCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "diagram [--format mermaid|dot]",
		Short: "Draw the state machine",
		Long: `Print the state machine, drawn from the same transition table the engine runs:
Mermaid (GitHub and GitLab render it in Markdown) or Graphviz dot.`,
		Example: `  captchafsm diagram > states.mmd
  captchafsm diagram --format dot | dot -Tsvg > states.svg`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "mermaid":
				fmt.Fprint(cmd.OutOrStdout(), fsm.Mermaid())
			case "dot":
				fmt.Fprint(cmd.OutOrStdout(), fsm.Dot())
			default:
				return usageErr("--format %q: want mermaid or dot", format)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "mermaid", "mermaid or dot")
	return c
}
