package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/fsm"
	"github.com/captchafsm/captchafsm/internal/jsonstream"
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

// replayTask replays t's history through the machine and compares the
// state it reaches with t's. A task that moved on after it was read (its
// history runs past its seq) is read again, so that a store an engine is
// writing is not reported wrong.
func replayTask(ctx context.Context, store persist.Store, t *persist.Task) replayJSON {
	for try := 0; ; try++ {
		v := replayJSON{ID: t.ID, Stored: t.State}
		hist, err := store.History(ctx, t.ID)
		if err != nil {
			v.Error = err.Error()
			return v
		}
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
		if v.OK || try > 0 || len(hist) == 0 || hist[len(hist)-1].Seq == t.Seq {
			return v
		}
		fresh, err := store.Get(ctx, t.ID)
		if err != nil {
			return v
		}
		t = fresh
	}
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
Tasks are read and replayed one by one: memory stays flat whatever the
database holds.

Exit status: 0 every task matches; 2 some task does not; 1 bad usage.`,
		Example: `  captchafsm replay --all
  captchafsm replay 0190c6d2-7b1e-7c3a-9f0e-2a41d5b6e7f8
  captchafsm replay --all --json | jq '.[] | select(.ok | not)'`,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
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
			out := bufferedOut(cmd.OutOrStdout())
			defer func() {
				if ferr := out.Flush(); err == nil {
					err = ferr
				}
			}()
			arr := jsonstream.NewArray(out)
			n, bad := 0, 0
			each := func(t *persist.Task) error {
				v := replayTask(ctx, store, t)
				n++
				if !v.OK {
					bad++
				}
				switch {
				case a.json:
					return arr.Add(v)
				case v.OK:
					_, err := fmt.Fprintf(out, "OK        %s  %s (%d records)\n", printable(v.ID), printable(string(v.Stored)), v.Records)
					return err
				default:
					_, err := fmt.Fprintf(out, "MISMATCH  %s  stored %s: %s\n", printable(v.ID), printable(string(v.Stored)), printable(v.Error))
					return err
				}
			}
			if all {
				if err := store.Scan(ctx, persist.ListOptions{}, each); err != nil {
					return fmt.Errorf("%s: %w", a.dbPath().value, err)
				}
			} else {
				t, err := findTask(ctx, store, args[0])
				if err != nil {
					return err
				}
				if err := each(t); err != nil {
					return err
				}
			}
			if a.json {
				if err := arr.Close(); err != nil {
					return err
				}
			} else if all {
				fmt.Fprintf(out, "%d tasks replayed: %d OK, %d MISMATCH\n", n, n-bad, bad)
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
