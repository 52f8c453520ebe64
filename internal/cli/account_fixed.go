package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
)

func (a *app) accountFixedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "account-fixed",
		Short: "Release the tasks parked in NeedsAccountFix",
		Long: `After an account error (ERROR_ZERO_BALANCE, ERROR_IP_NOT_ALLOWED, ...) the engine
stops every submit and parks the tasks in NeedsAccountFix: an empty balance must
not keep burning requests. Once you have fixed the account (topped up, added
the IP to the whitelist), account-fixed moves those tasks back to Submitting;
the next run or resume sends them.`,
		Example: `  captchafsm account-fixed && captchafsm resume
  captchafsm account-fixed --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer store.Close()
			n, err := engine.ReleaseAccountFix(cmd.Context(), store)
			if err != nil {
				return fmt.Errorf("%s: released %d tasks, then: %w", a.dbPath().value, n, err)
			}
			out := cmd.OutOrStdout()
			if a.json {
				return json.NewEncoder(out).Encode(map[string]int{"released": n})
			}
			if n == 0 {
				fmt.Fprintln(out, "no task was waiting in NeedsAccountFix")
				return nil
			}
			fmt.Fprintf(out, "released %d tasks (NeedsAccountFix → Submitting); run `captchafsm resume` to send them\n", n)
			return nil
		},
	}
}
