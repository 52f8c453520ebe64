package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/jsonstream"
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
	var lines bool
	c := &cobra.Command{
		Use:   "list [--state S]",
		Short: "List the tasks in the database",
		Long: `List the tasks in the database in creation order: id, ref, state, last code,
submits, polls, resubmits, created and updated. With --json an array of task
objects (id, ref, method, state, code, submits, retries, resubmits, polls,
provider_id, token, cost, created, updated, seq, and the task's own deadline,
priority, max_retries and max_resubmits when a library caller set them); with
--jsonl the same objects, one per line.

The list is written as it is read, so a database of millions of tasks lists in
flat memory; the table's columns are aligned in blocks of 1,000 rows.

States: Submitting, Backoff, Polling, Resubmitting, Done, Failed, NeedsAccountFix
(case and dashes are ignored: needs-account-fix works).`,
		Example: `  captchafsm list
  captchafsm list --state Failed
  captchafsm list --state needs-account-fix --json | jq length
  captchafsm list --jsonl | jq -c 'select(.submits > 1)'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if lines && a.json {
				return usageErr("--json and --jsonl: choose one (a JSON array, or one object per line)")
			}
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
			out := bufferedOut(cmd.OutOrStdout())
			defer func() {
				if ferr := out.Flush(); err == nil {
					err = ferr
				}
			}()
			n := 0
			var each func(*persist.Task) error
			var end func() error
			switch {
			case lines || a.json:
				var w jsonstream.Writer = jsonstream.NewArray(out)
				if lines {
					w = jsonstream.NewLines(out)
				}
				each = func(t *persist.Task) error { return w.Add(engine.ViewOf(t)) }
				end = w.Close
			default:
				tw := newBlockTable(out)
				if err := tw.row("ID\tREF\tSTATE\tCODE\tSUBMITS\tPOLLS\tRESUBMITS\tCREATED\tUPDATED\n"); err != nil {
					return err
				}
				each = func(t *persist.Task) error {
					return tw.row(fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", printable(t.ID), printable(dash(t.Ref)), printable(string(t.State)), printable(dash(t.Code)),
						t.Submits, t.Polls, t.Resubmits, stamp(t.Created), stamp(t.Updated)))
				}
				end = tw.flush
			}
			err = store.Scan(cmd.Context(), opts, func(t *persist.Task) error {
				n++
				return each(t)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", a.dbPath().value, err)
			}
			if err := end(); err != nil {
				return err
			}
			if n == 0 && !lines && !a.json {
				fmt.Fprintln(cmd.ErrOrStderr(), "captchafsm: no tasks"+stateNote(opts))
			}
			return nil
		},
	}
	c.Flags().StringVar(&state, "state", "", "only tasks in this state")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many tasks (0: all)")
	c.Flags().BoolVar(&lines, "jsonl", false, "JSON lines: one task object per line")
	return c
}

func stateNote(o persist.ListOptions) string {
	if len(o.States) == 0 {
		return ""
	}
	return " in state " + strconv.Quote(string(o.States[0]))
}
