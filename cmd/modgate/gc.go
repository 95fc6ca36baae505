package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/progress"
	"github.com/modgate/modgate/internal/retention"
	"github.com/modgate/modgate/internal/store"
)

const gcUsage = `Usage: modgate gc --data-dir DIR --max-size SIZE [--dry-run]

Removes stored module versions, least recently used first, until the disk
store in DIR holds at most SIZE (e.g. 500MiB, 20GiB). Each version goes
whole (.info, .mod, .zip); a removed version is fetched again on its next
request. A version's last use is the newest of what the serving modgate
recorded for it and its files' access and modification times. Versions
written or read in the last 10 minutes are kept, so gc may run next to a
serving modgate.

  --data-dir DIR   the store's directory (modgate serve --data-dir)
  --max-size SIZE  the most the store may hold: bytes, or KiB, MiB, GiB
  --dry-run        print what would be removed, remove nothing
`

// gcCmd runs "modgate gc": it prints each version it removes (or would
// remove) on stdout, progress on stderr.
func gcCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modgate gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, gcUsage) }
	dataDir := fs.String("data-dir", "", "the store's `directory`")
	maxSize := fs.String("max-size", "", "the most the store may hold (`size`)")
	dryRun := fs.Bool("dry-run", false, "remove nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("gc: unexpected arguments %q", fs.Args())
	case *dataDir == "":
		return errors.New("gc: --data-dir is required")
	case *maxSize == "":
		return errors.New("gc: --max-size is required")
	}
	limit, err := config.ParseByteSize(*maxSize)
	if err != nil {
		return fmt.Errorf("gc: --max-size: %w", err)
	}
	// A data dir that does not exist is a typo, not an empty store:
	// NewDisk would create it.
	if fi, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("gc: --data-dir: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("gc: --data-dir: %s is not a directory", *dataDir)
	}
	st, err := store.NewDisk(*dataDir)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	plan, err := retention.Plan(ctx, st, int64(limit), time.Now(), retention.Options{})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	fmt.Fprintf(stdout, "store: %d versions, %s; limit %s\n", plan.Versions, humanBytes(plan.Total), humanBytes(int64(limit)))

	if *dryRun {
		for _, v := range plan.Remove {
			fmt.Fprintf(stdout, "would remove %s (%s)\n", v, humanBytes(v.Size))
		}
		fmt.Fprintf(stdout, "would remove %d versions, %s; %s would be left\n", len(plan.Remove), humanBytes(plan.Removed), humanBytes(plan.After()))
	} else {
		var n int
		var bytes int64
		if len(plan.Remove) > 0 {
			bar := progress.New(stderr, "gc")
			bar.Start(len(plan.Remove))
			err = retention.Apply(ctx, st, plan, func(v retention.Version) {
				n++
				bytes += v.Size
				bar.Printf(stdout, "removed %s (%s)\n", v, humanBytes(v.Size))
				bar.Add(1)
			})
			bar.Done()
		}
		// Apply leaves a version written again since the plan: the
		// totals are of what it removed.
		fmt.Fprintf(stdout, "removed %d versions, %s; %s left\n", n, humanBytes(bytes), humanBytes(plan.Total-bytes))
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	if plan.Recent > 0 && !plan.Fits() {
		fmt.Fprintf(stdout, "still over the limit; versions kept as used in the last %v: %d\n", retention.RecentGuard, plan.Recent)
	}
	return nil
}

// humanBytes formats n bytes for a person: "1.5 MiB", "312 B".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}
