package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// historyJSON is history --json's object.
type historyJSON struct {
	Task struct {
		engine.TaskView
		// PossiblyCharged counts the submits that may have been charged
		// without their answer being recorded, the one in flight (if the
		// history ends with submit_sending) included.
		PossiblyCharged int `json:"possibly_charged"`
	} `json:"task"`
	History []engine.RecordView `json:"history"`
}

// findTask looks a task up by id, then by ref.
func findTask(ctx context.Context, s persist.Store, key string) (*persist.Task, error) {
	t, err := persist.Find(ctx, s, key)
	if errors.Is(err, persist.ErrNotFound) {
		return nil, usageErr("task %q: no task has this id or ref (see `captchafsm list`)", key)
	}
	return t, err
}

// inFlight reports whether a history ends with the intent to submit: the
// request may have reached the provider and no answer is recorded.
func inFlight(h []persist.Record) bool {
	return len(h) > 0 && transitions.InDoubt(h[len(h)-1].Event)
}

func (a *app) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history ID",
		Short: "Show a task's transitions",
		Long: `Show one task (by id or ref) and every transition of its history: sequence,
time, from → to, event, code and detail. A submit that may have been charged
without its answer being recorded (a crash or a lost answer between sending and
recording) is marked "!": the provider may have billed a task whose id we never
learnt. Proxy logins and passwords are shown as ***.`,
		Example: `  captchafsm history 0190c6d2-7b1e-7c3a-9f0e-2a41d5b6e7f8
  captchafsm history login-1 --json | jq '.history[] | select(.possibly_charged)'`,
		Args: exactArgs(1, "one task id or ref"),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			hist, err := store.History(ctx, t.ID)
			if err != nil {
				return fmt.Errorf("task %s: %w", t.ID, err)
			}
			charged := 0
			for _, r := range hist {
				if r.PossiblyCharged {
					charged++
				}
			}
			pending := inFlight(hist) && !t.State.Settled()
			if pending {
				charged++
			}
			out := cmd.OutOrStdout()
			if a.json {
				var h historyJSON
				h.Task.TaskView = engine.ViewOf(t)
				h.Task.PossiblyCharged = charged
				h.History = make([]engine.RecordView, 0, len(hist))
				for _, r := range hist {
					h.History = append(h.History, engine.RecordViewOf(r))
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(h)
			}
			fmt.Fprintf(out, "task      %s\n", printable(t.ID))
			if t.Ref != "" {
				fmt.Fprintf(out, "ref       %s\n", printable(t.Ref))
			}
			fmt.Fprintf(out, "method    %s\n", printable(t.Method))
			params := provider.RedactParams(t.Params)
			keys := make([]string, 0, len(params))
			for k := range params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(out, "  %s=%s\n", printable(k), printable(params[k]))
			}
			fmt.Fprintf(out, "state     %s", printable(string(t.State)))
			if t.Code != "" {
				fmt.Fprintf(out, " (%s)", printable(t.Code))
			}
			fmt.Fprintf(out, "\nsubmits   %d  polls %d  retries %d  resubmits %d\n", t.Submits, t.Polls, t.Retries, t.Resubmits)
			if t.Token != "" {
				fmt.Fprintf(out, "token     %s\n", printable(t.Token))
			}
			fmt.Fprintln(out)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\t!\tFROM → TO\tEVENT\tCODE\tDETAIL")
			for i, r := range hist {
				mark := ""
				detail := provider.RedactText(r.Detail)
				if r.PossiblyCharged {
					mark = "!"
					if !strings.Contains(detail, "charged") {
						detail = join(detail, "possibly charged")
					}
				}
				if pending && i == len(hist)-1 {
					mark = "!"
					detail = join(detail, "sent, no answer recorded: possibly charged (resume records it)")
				}
				from := string(r.From)
				if from == "" {
					from = "[*]"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s → %s\t%s\t%s\t%s\n", r.Seq, r.At.Local().Format("15:04:05.000"), mark,
					printable(from), printable(string(r.To)), printable(string(r.Event)), printable(dash(r.Code)), printable(dash(detail)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if charged > 0 {
				fmt.Fprintf(out, "\n! %d submit(s) possibly charged: the request may have reached the provider without its answer being recorded\n", charged)
			}
			return nil
		},
	}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
