package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/persist"
)

var daysRE = regexp.MustCompile(`^(\d+)d(.*)$`)

// parseAge reads a Go duration, also with a leading number of days: "30d",
// "1d12h", "90m".
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("too many days")
		}
		d = time.Duration(n) * 24 * time.Hour
		rest = m[2]
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 720h, 30d or 1d12h")
		}
		d += r
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return d, nil
}

func (a *app) pruneCmd() *cobra.Command {
	var older string
	c := &cobra.Command{
		Use:   "prune --older-than DURATION",
		Short: "Delete old finished tasks and compact the database",
		Long: `Delete the terminal tasks (Done, Failed) last updated longer ago than DURATION,
with their histories, then compact the file to give the space back. Tasks still
in flight and tasks waiting in NeedsAccountFix are never pruned. DURATION is a
Go duration (720h, 90m) and may start with days: 30d, 1d12h.`,
		Example: `  captchafsm prune --older-than 30d
  captchafsm prune --older-than 12h --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if older == "" {
				return usageErr("prune: --older-than DURATION is required")
			}
			age, err := parseAge(older)
			if err != nil {
				return usageErr("--older-than %q: %v", older, err)
			}
			store, err := a.openStore(false)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx := cmd.Context()
			path := a.dbPath().shown()
			before := fileSize(a.dbPath().value)
			n, err := store.Prune(ctx, time.Now().Add(-age))
			if err != nil {
				return fmt.Errorf("%s: prune: %w", path, err)
			}
			c, compacts := store.(persist.Compacter)
			if compacts {
				if err := c.Compact(ctx); err != nil {
					return fmt.Errorf("%s: pruned %d tasks, then compact: %w", path, n, err)
				}
			}
			after := fileSize(a.dbPath().value)
			if a.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"pruned": n, "size_before": before, "size_after": after})
			}
			if !compacts {
				fmt.Fprintf(cmd.OutOrStdout(), "pruned %d terminal tasks last updated more than %s ago from %s\n", n, age, path)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pruned %d terminal tasks last updated more than %s ago; %s compacted from %d to %d bytes\n",
				n, age, path, before, after)
			return nil
		},
	}
	c.Flags().StringVar(&older, "older-than", "", "age of the tasks to delete: 720h, 30d, 1d12h")
	return c
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
