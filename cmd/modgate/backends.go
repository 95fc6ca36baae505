package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// backends are what every subcommand that touches modules builds from the
// configuration: the storage, the sources and the checksum database.
type backends struct {
	disk *store.Disk
	// chain is the upstream proxy list (--upstream); the checksum
	// database is reached through its proxies too.
	chain *source.Chain
	// router is where modules are fetched from: a module matching one of
	// its routes from that route's source alone, any other from chain.
	// There are no routes yet: private git sources will add them.
	router   *source.Router
	verifier *sumdb.Verifier // nil with --sumdb off
	sumProxy *sumdb.Proxy    // nil with --sumdb off
}

func newBackends(cfg *config.Config, log *slog.Logger) (*backends, error) {
	disk, err := store.NewDisk(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	// One client for the upstreams and the checksum database: an upstream
	// that stalls mid-answer fails after --upstream-idle-timeout, whatever
	// is asked of it.
	client := source.NewHTTPClient(source.WithIdleTimeout(cfg.UpstreamIdleTimeout))
	chain, err := source.ParseList(cfg.Upstream, func(base string) source.Source {
		return source.NewUpstream(base, client)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("upstream"), err)
	}
	router, err := source.NewRouter(chain)
	if err != nil {
		return nil, err
	}
	verifier, sumProxy, err := newChecksumDB(cfg, disk, chain, notInSumDB(cfg.NoSumDB, router), client, log)
	if err != nil {
		return nil, err
	}
	return &backends{disk: disk, chain: chain, router: router, verifier: verifier, sumProxy: sumProxy}, nil
}

// cacheVerifier is the verifier as the cache wants it: a nil interface, not
// an interface holding a nil pointer, when verification is off.
func (b *backends) cacheVerifier() cache.Verifier {
	if b.verifier == nil {
		return nil
	}
	return b.verifier
}

// stagingCleanInterval is how often a serving modgate removes the
// leftovers of writes whose process died (kill -9, OOM) from the data dir.
// The start-up clean (store.NewDisk) is not enough: replicas sharing the
// data dir leave leftovers while this one runs. A clean reads one small
// directory, so it can be frequent; leftovers are partial zips, so it should.
const stagingCleanInterval = 10 * time.Minute

// startStagingJanitor cleans the staging directory every
// stagingCleanInterval until ctx is done.
func (b *backends) startStagingJanitor(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(stagingCleanInterval)
	go func() {
		defer t.Stop()
		b.cleanStaging(ctx, t.C, log)
	}()
}

// cleanStaging removes leftovers of interrupted writes on every tick until
// ctx is done, and logs what it removed.
func (b *backends) cleanStaging(ctx context.Context, tick <-chan time.Time, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		n, size, err := b.disk.CleanStaging(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("could not clean the staging directory; check its permissions and the disk", "dir", b.disk.StagingDir(), "removed", n, "err", err)
			continue
		}
		if n > 0 {
			log.Info("removed leftovers of interrupted writes", "dir", b.disk.StagingDir(), "files", n, "bytes", size)
		}
	}
}
