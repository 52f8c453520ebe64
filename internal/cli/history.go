package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/jsonstream"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// historyJSON is history --json's object.
type historyJSON struct {
	Task struct {
		engine.Task
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
		RunE: func(cmd *cobra.Command, args []string) (err error) {
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
			out := bufferedOut(cmd.OutOrStdout())
			defer func() {
				if ferr := out.Flush(); err == nil {
					err = ferr
				}
			}()
			// The submit in flight, if any: the task's last record is the
			// intent to submit and no answer followed.
			pending := t.Intent && !t.State.Settled()
			if a.json {
				return historyJSONOut(ctx, store, t, pending, out)
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
			tw := newBlockTable(out)
			if err := tw.row("SEQ\tTIME\t!\tFROM → TO\tEVENT\tCODE\tDETAIL\n"); err != nil {
				return err
			}
			charged := 0
			err = store.ScanHistory(ctx, t.ID, func(r persist.Record) error {
				mark := ""
				detail := provider.RedactText(r.Detail)
				if r.PossiblyCharged {
					charged++
					mark = "!"
					if !strings.Contains(detail, "charged") {
						detail = join(detail, "possibly charged")
					}
				}
				if pending && r.Seq == t.Seq {
					charged++
					mark = "!"
					detail = join(detail, "sent, no answer recorded: possibly charged (resume records it)")
				}
				from := string(r.From)
				if from == "" {
					from = "[*]"
				}
				return tw.row(fmt.Sprintf("%d\t%s\t%s\t%s → %s\t%s\t%s\t%s\n", r.Seq, r.At.Local().Format("15:04:05.000"), mark,
					printable(from), printable(string(r.To)), printable(string(r.Event)), printable(dash(r.Code)), printable(dash(detail))))
			})
			if err != nil {
				return fmt.Errorf("task %s: %w", t.ID, err)
			}
			if err := tw.flush(); err != nil {
				return err
			}
			if charged > 0 {
				fmt.Fprintf(out, "\n! %d submit(s) possibly charged: the request may have reached the provider without its answer being recorded\n", charged)
			}
			return nil
		},
	}
}

// historyJSONOut writes history --json's object for t, its history
// streamed. The task's possibly_charged count comes before the history in
// the object, so the history is read twice: once to count, once to write
// (the records the first pass saw, no more).
func historyJSONOut(ctx context.Context, store persist.Store, t *persist.Task, pending bool, out io.Writer) error {
	charged, last := 0, uint64(0)
	err := store.ScanHistory(ctx, t.ID, func(r persist.Record) error {
		if r.PossiblyCharged {
			charged++
		}
		last = r.Seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	if pending && last == t.Seq {
		charged++
	}
	var h historyJSON
	h.Task.Task = engine.ViewOf(t)
	h.Task.PossiblyCharged = charged
	task, err := json.MarshalIndent(h.Task, "  ", "  ")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "{\n  \"task\": %s,\n  \"history\": ", task); err != nil {
		return err
	}
	// The records, one level deeper than a top-level array.
	arr := jsonstream.NewArray(&indenter{w: out})
	err = store.ScanHistory(ctx, t.ID, func(r persist.Record) error {
		if r.Seq > last {
			return errEnough
		}
		return arr.Add(engine.RecordViewOf(r))
	})
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	if arr.Len() == 0 {
		_, err = io.WriteString(out, "[]\n}\n")
		return err
	}
	if _, err := io.WriteString(out, "\n  ]\n}\n"); err != nil {
		return err
	}
	return nil
}

// errEnough stops a scan that has read what it needs.
var errEnough = errors.New("enough")

// indenter indents every line after the first by two spaces: a streamed
// array nested one level in an object.
type indenter struct{ w io.Writer }

func (in *indenter) Write(b []byte) (int, error) {
	_, err := in.w.Write(bytes.ReplaceAll(b, []byte("\n"), []byte("\n  ")))
	return len(b), err
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
