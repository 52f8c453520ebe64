package cli

import (
	"encoding/json"
	"fmt"
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

// pruneJSON is prune --json's object. Sizes are bytes; used_* and freed
// are what the data occupies (not the file's apparent size, which bbolt
// keeps ahead of its data); file_size and disk_size describe the file
// after the prune (0 for a database that is not a file).
type pruneJSON struct {
	Pruned     int   `json:"pruned"`
	UsedBefore int64 `json:"used_before"`
	UsedAfter  int64 `json:"used_after"`
	Freed      int64 `json:"freed"`
	FileSize   int64 `json:"file_size"`
	DiskSize   int64 `json:"disk_size"`
}

func (a *app) pruneCmd() *cobra.Command {
	var older string
	c := &cobra.Command{
		Use:   "prune --older-than DURATION",
		Short: "Delete old finished tasks and compact the database",
		Long: `Delete the terminal tasks (Done, Failed) last updated longer ago than DURATION,
with their histories, then compact the file to give the space back. Tasks still
in flight and tasks waiting in NeedsAccountFix are never pruned. DURATION is a
Go duration (720h, 90m) and may start with days: 30d, 1d12h.

It reports the bytes the data used before and after, and so what it freed.
bbolt grows its file in steps ahead of its data, leaving a sparse tail: the
file's apparent size (ls -l) can exceed the data several times over while
the blocks it occupies on the disk (du) stay close to it; both are shown.
With --json: {"pruned", "used_before", "used_after", "freed", "file_size",
"disk_size"}. A PostgreSQL database reuses the space of pruned rows itself
(autovacuum): its tables' size is reported, and the freed bytes are those
the tables gave back at once.`,
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
			sizer, sized := store.(persist.Sizer)
			var before, after persist.Space
			if sized {
				if before, err = sizer.Space(ctx); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
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
			if sized {
				if after, err = sizer.Space(ctx); err != nil {
					return fmt.Errorf("%s: pruned %d tasks, then measure: %w", path, n, err)
				}
			}
			res := pruneJSON{Pruned: n, UsedBefore: before.Used, UsedAfter: after.Used,
				Freed: max(0, before.Used-after.Used), FileSize: after.File, DiskSize: after.Disk}
			out := cmd.OutOrStdout()
			if a.json {
				return json.NewEncoder(out).Encode(res)
			}
			fmt.Fprintf(out, "pruned %d terminal tasks last updated more than %s ago from %s\n", n, age, path)
			if !sized {
				return nil
			}
			fmt.Fprintf(out, "data: %s before, %s after: %s freed\n", bytesText(res.UsedBefore), bytesText(res.UsedAfter), bytesText(res.Freed))
			if res.FileSize > 0 {
				fmt.Fprintf(out, "file: %s on disk (%s apparent: bbolt keeps a sparse tail ahead of its data)\n",
					bytesText(res.DiskSize), bytesText(res.FileSize))
			}
			return nil
		},
	}
	c.Flags().StringVar(&older, "older-than", "", "age of the tasks to delete: 720h, 30d, 1d12h")
	return c
}

// bytesText shows a size in bytes for people: "812 B", "3.4 KiB", "27.1 MiB".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, suffix[i])
}
