package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// stagingCleanInterval is how often a serving modgate removes the
// leftovers of writes whose process died (kill -9, OOM) from the storage.
// The clean when the store is built is not enough: replicas sharing the
// data dir leave leftovers while this one runs. A clean reads one small
// directory, so it can be frequent; leftovers are partial zips, so it should.
const stagingCleanInterval = 10 * time.Minute

// startJanitor cleans the storage of interrupted writes' leftovers every
// stagingCleanInterval until ctx is done, if the store leaves any
// (store.StagingCleaner). The channel it returns is closed when it has
// stopped.
func (s *Server) startJanitor(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	sc, ok := s.store.(store.StagingCleaner)
	if !ok {
		close(done)
		return done
	}
	t := time.NewTicker(stagingCleanInterval)
	go func() {
		defer close(done)
		defer t.Stop()
		cleanStaging(ctx, sc, stagingName(s.store, s.cfg.DataDir), t.C, s.log)
	}()
	return done
}

// stagingName says where a store's staging files are, for the log.
func stagingName(st store.Store, dataDir string) string {
	if fp, ok := st.(store.FilePutter); ok {
		return fp.StagingDir()
	}
	return dataDir
}

// cleanStaging removes leftovers of interrupted writes on every tick until
// ctx is done, and logs what it removed; dir names the place in the log.
func cleanStaging(ctx context.Context, sc store.StagingCleaner, dir string, tick <-chan time.Time, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		n, size, err := sc.CleanStaging(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("could not clean the staging directory; check its permissions and the disk", "dir", dir, "removed", n, "err", err)
			continue
		}
		if n > 0 {
			log.Info("removed leftovers of interrupted writes", "dir", dir, "files", n, "bytes", size)
		}
	}
}
