package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// sumdbLatestTTL is how long the database's latest signed tree is served to
// clients before it is fetched again.
const sumdbLatestTTL = time.Minute

// notInSumDB returns the predicate of module paths that are never verified
// and never looked up in the checksum database, by the verifier nor through
// the /sumdb/ proxy: those matching --nosumdb's patterns and those of the
// router's private routes. Both use this one function, so that a private
// module's name cannot leave by one of them.
func notInSumDB(nosumdb string, router *source.Router) func(path string) bool {
	return func(path string) bool {
		return module.MatchPrefixPatterns(nosumdb, path) || router.Private(path)
	}
}

// newChecksumDB builds the verifier and the database proxy from the
// configuration; both are nil when verification is explicitly off. skip
// reports the paths never verified nor looked up (notInSumDB). Close the
// verifier when done: it stops its background lookups.
func newChecksumDB(cfg *config.Config, st store.Store, chain *source.Chain, skip func(path string) bool, client *http.Client, log *slog.Logger) (*sumdb.Verifier, *sumdb.Proxy, error) {
	if cfg.SumDB == "off" {
		log.Warn("CHECKSUM VERIFICATION IS OFF (--sumdb off): modules from upstreams are stored and served unverified")
		return nil, nil, nil
	}
	db, err := sumdb.ParseDB(cfg.SumDB)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Source("sumdb"), err)
	}
	remote := sumdb.NewRemote(db, chain.UpstreamURLs(), client)
	v := sumdb.NewVerifier(sumdb.Config{DB: db, Store: st, Remote: remote, Skip: skip, Logger: log})
	log.Info("verifying modules against checksum database", "db", db.Name, "nosumdb", cfg.NoSumDB)
	return v, sumdb.NewProxy(v, skip, sumdbLatestTTL, log), nil
}
