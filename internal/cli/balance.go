package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) balanceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "balance",
		Short: "Show the account's balance",
		Long:  `Ask the provider for the account's balance (res.php action=getbalance).`,
		Example: `  captchafsm balance
  captchafsm balance --key-file ~/.config/captchafsm/key --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, _, err := a.client()
			if err != nil {
				return err
			}
			bal, err := client.Balance(cmd.Context())
			if err != nil {
				return apiProblem("balance", err)
			}
			if a.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"balance": bal})
			}
			fmt.Fprintln(cmd.OutOrStdout(), printable(bal))
			return nil
		},
	}
}

// apiProblem is a failed API call as one line: the code with its meaning,
// or the transport trouble.
func apiProblem(what string, err error) error {
	var code string
	if c := apiCode(err); c != "" {
		code = describeCode(c)
		if e, ok := lookupFix(c); ok {
			code += "; " + e
		}
		return fmt.Errorf("%s: %s", what, code)
	}
	return fmt.Errorf("%s: %w", what, err)
}
