package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// stamp is a time in a table: local, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) listCmd() *cobra.Command {
	var state string
	var limit int
	c := &cobra.Command{
		Use:   "list [--state S]",
		Short: "List the tasks in the database",
		Long: `List the tasks in the database in creation order: id, ref, state, last code,
submits, polls, resubmits, created and updated. With --json an array of task
objects (id, ref, method, state, code, submits, retries, resubmits, polls,
provider_id, token, cost, created, updated).

States: Submitting, Backoff, Polling, Resubmitting, Done, Failed, NeedsAccountFix
(case and dashes are ignored: needs-account-fix works).`,
		Example: `  captchafsm list
  captchafsm list --state Failed
  captchafsm list --state needs-account-fix --json | jq length`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := persist.ListOptions{Limit: limit}
			if state != "" {
				s, err := states.Parse(state)
				if err != nil {
					return usageErr("--state %q: not a state (want one of Submitting, Backoff, Polling, Resubmitting, Done, Failed, NeedsAccountFix)", state)
				}
				opts.States = []states.State{s}
			}
			if limit < 0 {
				return usageErr("--limit %d: must not be negative", limit)
			}
			store, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer store.Close()
			tasks, err := store.List(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("%s: %w", a.dbPath().value, err)
			}
			out := cmd.OutOrStdout()
			if a.json {
				list := make([]engine.TaskView, 0, len(tasks))
				for _, t := range tasks {
					list = append(list, engine.ViewOf(t))
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREF\tSTATE\tCODE\tSUBMITS\tPOLLS\tRESUBMITS\tCREATED\tUPDATED")
			for _, t := range tasks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", printable(t.ID), printable(dash(t.Ref)), printable(string(t.State)), printable(dash(t.Code)),
					t.Submits, t.Polls, t.Resubmits, stamp(t.Created), stamp(t.Updated))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(tasks) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "captchafsm: no tasks"+stateNote(opts))
			}
			return nil
		},
	}
	c.Flags().StringVar(&state, "state", "", "only tasks in this state")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many tasks (0: all)")
	return c
}

func stateNote(o persist.ListOptions) string {
	if len(o.States) == 0 {
		return ""
	}
	return " in state " + strconv.Quote(string(o.States[0]))
}
