package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
)

func (a *app) resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume",
		Short: "Drive every unfinished task in the database to its end",
		Long: `Drive every task that is not terminal (after a crash, a kill or an interrupted
run) until it is Done, Failed or parked in NeedsAccountFix. Each task continues
where it stopped: a wait under way is honoured, a task already accepted by the
provider is polled, not sent again, and a submit whose outcome is unknown is
recorded in its history as possibly charged before it is sent again. Tasks
parked in NeedsAccountFix are released first when a free getbalance shows the
account usable again (a positive balance: an automatic top-up needs no
person), unless account_probe_interval is "0s"; else they wait for
account-fixed.

Output as for run: one line (or JSON object) per task.

Exit status: 0 all Done; 1 no database at --db (resume creates none) or bad
usage; 2 some task Failed; 3 some task NeedsAccountFix; 4 the database
failed to record paid answers for too long (they are named; the next resume
records them as possibly charged); 130 interrupted (resume again continues).`,
		Example: `  captchafsm resume
  captchafsm resume --db /var/lib/bot/captchafsm.db --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return interrupted(cmd.Context(), a.resume(cmd, args)) },
	}
}

func (a *app) resume(cmd *cobra.Command, _ []string) error {
	client, pol, err := a.client()
	if err != nil {
		return err
	}
	b, err := a.openBatch(cmd, client, pol, false, false)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	parked, err := b.store.List(ctx, persist.ListOptions{States: []states.State{states.NeedsAccountFix}})
	if err != nil {
		_ = b.eng.Close()
		b.store.Close()
		return fmt.Errorf("%s: %w", a.dbPath().value, err)
	}
	ids := make([]string, 0, len(parked))
	for _, t := range parked {
		ids = append(ids, t.ID)
	}
	if err := b.watch(ctx, ids); err != nil {
		_ = b.eng.Close()
		b.store.Close()
		return fmt.Errorf("%s: %w", a.dbPath().value, err)
	}
	if len(b.ids) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "captchafsm: nothing to resume: every task is terminal")
	}
	return b.drive(ctx)
}
