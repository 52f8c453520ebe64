package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

// replayJSON is one task's verdict as replay --json prints it.
type replayJSON struct {
	ID       string       `json:"id"`
	Stored   states.State `json:"stored"`
	Replayed states.State `json:"replayed"`
	Records  int          `json:"records"`
	OK       bool         `json:"ok"`
	Error    string       `json:"error,omitempty"`
}

func (a *app) replayCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "replay ID|--all",
		Short: "Re-derive tasks' states from their histories",
		Long: `Replay each task's history through the state machine (built from the same
transition table the engine uses) and compare the state it reaches with the
stored one. One line per task: OK, or MISMATCH with the reason. A history the
machine refuses (an illegal move, a gap in the sequence) is a mismatch too.

Exit status: 0 every task matches; 2 some task does not; 1 bad usage.`,
		Example: `  captchafsm replay --all
  captchafsm replay 0190c6d2-7b1e-7c3a-9f0e-2a41d5b6e7f8
  captchafsm replay --all --json | jq '.[] | select(.ok | not)'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErr("replay: give a task ID or --all, not both")
			case !all && len(args) != 1:
				return usageErr("replay: want one task ID (or ref), or --all")
			}
			store, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx := cmd.Context()
			var tasks []*persist.Task
			if all {
				tasks, err = store.List(ctx, persist.ListOptions{})
				if err != nil {
					return fmt.Errorf("%s: %w", a.dbPath().value, err)
				}
			} else {
				t, err := findTask(ctx, store, args[0])
				if err != nil {
					return err
				}
				tasks = []*persist.Task{t}
			}
			out := cmd.OutOrStdout()
			verdicts := make([]replayJSON, 0, len(tasks))
			bad := 0
			for _, t := range tasks {
				v := replayJSON{ID: t.ID, Stored: t.State}
				hist, err := store.History(ctx, t.ID)
				if err != nil {
					v.Error = err.Error()
				} else {
					v.Records = len(hist)
					v.Replayed, err = fsm.Replay(hist)
					switch {
					case err != nil:
						v.Error = err.Error()
					case v.Replayed != t.State:
						v.Error = fmt.Sprintf("history gives %s, stored %s", v.Replayed, t.State)
					default:
						v.OK = true
					}
				}
				if !v.OK {
					bad++
				}
				if a.json {
					verdicts = append(verdicts, v)
					continue
				}
				if v.OK {
					fmt.Fprintf(out, "OK        %s  %s (%d records)\n", printable(t.ID), printable(string(t.State)), v.Records)
				} else {
					fmt.Fprintf(out, "MISMATCH  %s  stored %s: %s\n", printable(t.ID), printable(string(t.State)), printable(v.Error))
				}
			}
			if a.json {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(verdicts); err != nil {
					return err
				}
			} else if all {
				fmt.Fprintf(out, "%d tasks replayed: %d OK, %d MISMATCH\n", len(tasks), len(tasks)-bad, bad)
			}
			if bad > 0 {
				return exitWith(ExitFailed)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "replay every task in the database")
	return c
}
