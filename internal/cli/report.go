package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

func (a *app) reportCmd() *cobra.Command {
	var good, bad bool
	c := &cobra.Command{
		Use:   "report ID --good|--bad",
		Short: "Tell the provider whether a solved task's answer was right",
		Long: `Report a solved task (by our id or ref) to the provider: --bad when the site
refused the token or text (the provider may refund it and checks its workers),
--good when it was accepted. The provider's id is taken from the database.`,
		Example: `  captchafsm report 0190c6d2-7b1e-7c3a-9f0e-2a41d5b6e7f8 --bad
  captchafsm report login-1 --good`,
		Args: exactArgs(1, "one task id or ref"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if good == bad {
				return usageErr("report: give exactly one of --good or --bad")
			}
			client, _, err := a.client()
			if err != nil {
				return err
			}
			store, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx := cmd.Context()
			t, err := findTask(ctx, store, args[0])
			if err != nil {
				return err
			}
			if t.State != states.Done || t.ProviderID == "" {
				return usageErr("task %s is %s: only a solved (Done) task can be reported", t.ID, t.State)
			}
			hist, err := store.History(ctx, t.ID)
			if err != nil {
				return fmt.Errorf("task %s: %w", t.ID, err)
			}
			for _, r := range hist {
				if r.Event == transitions.Reported {
					return usageErr("task %s was reported already (%s, %s)", t.ID, r.Detail, r.At.Format(time.RFC3339))
				}
			}
			if err := client.Report(ctx, t.ProviderID, good); err != nil {
				return apiProblem("report "+t.ID, err)
			}
			if _, err := engine.RecordReport(ctx, store, t, good); err != nil {
				return err
			}
			verdict := "bad"
			if good {
				verdict = "good"
			}
			if a.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{
					"id": t.ID, "provider_id": t.ProviderID, "report": verdict})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reported task %s (provider id %s) as %s\n", printable(t.ID), printable(t.ProviderID), verdict)
			return nil
		},
	}
	c.Flags().BoolVar(&good, "good", false, "the answer was accepted")
	c.Flags().BoolVar(&bad, "bad", false, "the answer was wrong")
	return c
}

// apiCode is the provider's code behind err, "" when there is none.
func apiCode(err error) string {
	var ae *provider.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// lookupFix is the catalogue's fix for code.
func lookupFix(code string) (string, bool) {
	e, ok := transitions.Lookup(code)
	if !ok {
		return "", false
	}
	return strings.TrimSuffix(e.Fix, "."), true
}
