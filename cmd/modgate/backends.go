package main

import (
	"fmt"
	"log/slog"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// backends are what every subcommand that touches modules builds from the
// configuration: the storage, the upstream chain and the checksum database.
type backends struct {
	disk     *store.Disk
	chain    *source.Chain
	verifier *sumdb.Verifier // nil with --sumdb off
	sumProxy *sumdb.Proxy    // nil with --sumdb off
}

func newBackends(cfg *config.Config, log *slog.Logger) (*backends, error) {
	disk, err := store.NewDisk(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	client := source.NewHTTPClient()
	chain, err := source.ParseList(cfg.Upstream, func(base string) source.Source {
		return source.NewUpstream(base, client)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("upstream"), err)
	}
	verifier, sumProxy, err := newChecksumDB(cfg, disk, chain, client, log)
	if err != nil {
		return nil, err
	}
	return &backends{disk: disk, chain: chain, verifier: verifier, sumProxy: sumProxy}, nil
}

// cacheVerifier is the verifier as the cache wants it: a nil interface, not
// an interface holding a nil pointer, when verification is off.
func (b *backends) cacheVerifier() cache.Verifier {
	if b.verifier == nil {
		return nil
	}
	return b.verifier
}
