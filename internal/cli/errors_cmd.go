package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/transitions"
)

// catalogueJSON is one catalogue entry as errors --json prints it.
type catalogueJSON struct {
	Code  string `json:"code"`
	Class string `json:"class"`
	Where string `json:"where"`
	// Meaning and Fix are for a person.
	Meaning string `json:"meaning"`
	Fix     string `json:"fix"`
	// RetryDelay is the code's own wait before a retry, a Go duration; ""
	// when the policy's backoff applies.
	RetryDelay string `json:"retry_delay"`
	// Backoff is the code's own backoff range ("3s-10s"), "" when none.
	Backoff string `json:"backoff"`
	// Ban is the length of the engine-wide block the code announces, "" when none.
	Ban string `json:"ban"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func entryJSON(e transitions.Entry) catalogueJSON {
	c := catalogueJSON{Code: e.Code, Class: string(e.Class), Where: string(e.Where), Meaning: e.Meaning, Fix: e.Fix,
		RetryDelay: durString(e.RetryDelay), Ban: durString(e.Ban)}
	if e.BackoffMin > 0 {
		c.Backoff = e.BackoffMin.String() + "-" + e.BackoffMax.String()
	}
	return c
}

func (a *app) errorsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "errors [CODE]",
		Short: "Show the catalogue of the provider's error codes",
		Long: `Show every code the provider may answer and what the engine does with it:
its class (permanent: never sent again; transient: wait and retry; account:
stop every submit until account-fixed; not_ready: poll again; resubmit: a new
task with the same parameters), the endpoint that answers it, its meaning, the
fix, and its own retry delay, backoff or ban. With CODE, only that code.

A code the catalogue does not hold fails its task and is kept in the history.`,
		Example: `  captchafsm errors
  captchafsm errors ERROR_ZERO_BALANCE
  captchafsm errors --json | jq -r '.[] | select(.class=="transient") | .code'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErr("errors: want at most one CODE (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			entries := transitions.Catalogue()
			if len(args) == 1 {
				e, ok := transitions.Lookup(args[0])
				if !ok {
					return usageErr("errors %q: not in the catalogue (such a code fails its task; see `captchafsm errors`)", args[0])
				}
				entries = []transitions.Entry{e}
			}
			out := cmd.OutOrStdout()
			if a.json {
				list := make([]catalogueJSON, 0, len(entries))
				for _, e := range entries {
					list = append(list, entryJSON(e))
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CODE\tCLASS\tWHERE\tDELAY\tMEANING\tFIX")
			for _, e := range entries {
				j := entryJSON(e)
				delay := j.RetryDelay
				switch {
				case j.Ban != "":
					delay = "ban " + j.Ban
				case j.Backoff != "":
					delay = j.Backoff
				case delay == "":
					delay = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Code, e.Class, e.Where, delay, e.Meaning, e.Fix)
			}
			return tw.Flush()
		},
	}
}
