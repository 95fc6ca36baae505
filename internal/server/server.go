// Package server builds modgate's service from its configuration, in one
// place: the storage, the sources (routes in front of the upstream chain),
// the checksum database, the module cache, the wrappers around it, the
// HTTP handler with its ops endpoints, and the http.Server. `modgate serve`
// runs a Server; tests and benchmarks build the same one with New and a few
// Options, so that what they exercise is what runs.
//
// What later features add plugs in here as an Option, not as edits along
// the request path: a source for some module paths is a route
// (WithRoutes), and authentication, policy, audit or prefetch is a wrapper
// of the protocol.Modules the handler asks (WithWrapper).
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/prefetch"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// Server is modgate's GOPROXY service: everything a configuration
// describes, built and wired, ready to serve. Build it with New; serve it
// with Listen and Serve, or mount Handler; end it with Shutdown (drain)
// and Close (release).
type Server struct {
	cfg *config.Config
	log *slog.Logger

	store store.Store
	// chain is the upstream proxy list (--upstream); the checksum
	// database is reached through its proxies too.
	chain    *source.Chain
	verifier *sumdb.Verifier // nil with --sumdb off
	cache    *cache.Modules
	// git fetches private modules (and "direct" entries) from version
	// control; nil when nothing does.
	git *gitParts
	// gate is authentication, policy and audit, each nil when off.
	gate *gateParts
	// coord is what replicas share through Redis; empty without --redis.
	coord *coordination
	// usage records each version's use and the charts' series.
	usage *usageParts
	// modules is what the handler asks: the cache inside the wrappers.
	modules protocol.Modules
	// closeWrappers close the wrappers that have a Close method,
	// innermost first.
	closeWrappers []func()
	// warmup is the admin API's prefetch jobs.
	warmup *warmupParts

	handler http.Handler
	http    *http.Server
	version string // what /setup tells clients
	// now is the clock WithClock gave, or time.Now.
	now func() time.Time
}

// New builds the server that cfg describes. ctx bounds the work of
// building it (the storage's clean of interrupted writes). Close the
// Server when done, served or not: it stops the cache's and the checksum
// database's background work.
//
// The request path, outermost first: goproxy.Instrument, the mux (ops
// endpoints, /sumdb/, the GOPROXY handler), the wrappers, the cache, the
// router and its routes, the upstream chain; the cache checks what it
// fetches with the verifier before it stores it.
func New(ctx context.Context, cfg *config.Config, opts ...Option) (_ *Server, err error) {
	o := options{log: slog.Default(), newCache: cache.New}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		// One client for the upstreams and the checksum database: an
		// upstream that stalls mid-answer fails after
		// --upstream-idle-timeout, whatever is asked of it.
		o.client = source.NewHTTPClient(source.WithIdleTimeout(cfg.UpstreamIdleTimeout))
	}
	s := &Server{cfg: cfg, log: o.log, now: o.now}
	if s.now == nil {
		s.now = time.Now
	}
	defer func() {
		if err != nil { // release what was built before the failure
			s.gate.close()
			s.closeGit()
			s.coord.close()
			if s.verifier != nil {
				s.verifier.Close()
			}
		}
	}()

	s.store, err = store.New(ctx, StoreConfig(cfg))
	if err != nil {
		if cfg.Storage == store.KindS3 {
			return nil, fmt.Errorf("%s: %w", cfg.Source("storage"), err)
		}
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if s.coord, err = newCoordination(ctx, cfg, o.log); err != nil {
		return nil, err
	}
	scratch, err := scratchDir(s.store, cfg.DataDir)
	if err != nil {
		return nil, err
	}

	var direct source.Source // "direct" entries: not configured without git
	if needsGit(cfg) {
		if s.git, err = newGit(cfg, scratch, o.log); err != nil {
			return nil, err
		}
		direct = s.git.source
	} else if cfg.WebhookSecret != "" {
		o.log.Warn("--webhook-secret is set but nothing is fetched from git (no --private, no direct upstream entry): /webhooks/git stays off")
	}
	s.chain, err = source.ParseListDirect(cfg.Upstream, func(base string) source.Source {
		return source.NewUpstream(base, o.client)
	}, direct)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("upstream"), err)
	}
	// A module matching a route is fetched from that route's source alone,
	// any other from the chain. --private is the first route.
	routes := o.routes
	if cfg.Private != "" {
		routes = append([]source.Route{{Patterns: cfg.Private, Source: s.git.source, Private: true}}, routes...)
	}
	router, err := source.NewRouter(s.chain, routes...)
	if err != nil {
		return nil, err
	}

	var sumProxy *sumdb.Proxy
	s.verifier, sumProxy, err = newChecksumDB(cfg, s.store, s.chain, notInSumDB(cfg.NoSumDB, router), o.client, o.log)
	if err != nil {
		return nil, err
	}

	if s.gate, err = newGate(cfg, o.client, o.log); err != nil {
		return nil, err
	}

	cc := cache.Config{
		Store:       s.store,
		Source:      router,
		ScratchDir:  scratch,
		ListTTL:     cfg.ListTTL,
		NegativeTTL: cfg.NegativeTTL,
		// Per client address: behind a load balancer all clients share
		// its address, and the operator raises or disables the limit.
		UpstreamRate:  float64(cfg.UpstreamRate),
		UpstreamBurst: cfg.UpstreamBurst,
		FetchTimeout:  cfg.FetchTimeout,
		Logger:        o.log,
		Verifier:      cacheVerifier(s.verifier),
		Now:           o.now,
	}
	s.coord.apply(&cc, cfg.Lease)
	s.cache = o.newCache(cc)
	s.modules = s.cache
	if cfg.Prefetch {
		// Innermost: prefetches are modgate's own work, so they pass no
		// authentication, policy or audit wrapper; it is closed after the
		// outer wrappers and before the cache.
		pf := prefetch.Wrap(s.cache, prefetch.Options{Skip: router.Private, Logger: o.log})
		s.modules = pf
		s.closeWrappers = append(s.closeWrappers, pf.Close)
	}
	for i := len(o.wrappers) - 1; i >= 0; i-- { // the first given is outermost
		s.modules = o.wrappers[i](s.modules)
		if c := closerOf(s.modules); c != nil {
			s.closeWrappers = append(s.closeWrappers, c) // innermost first
		}
	}

	// Usage is recorded inside the gate: what it refuses is no use.
	s.usage = newUsage(ctx, s.store, cfg.Listen, o.log, o.now)
	s.modules = s.usage.wrap(s.modules)

	// The gate is outermost: what it refuses, the audit log records.
	s.modules = s.gate.wrap(s.modules)
	s.warmup = s.newWarmup()

	s.version = o.version
	if s.version == "" {
		s.version = "devel"
	}
	s.handler = goproxy.Instrument(o.log, s.gate.middleware(s.routes(sumProxy)),
		goproxy.SendDeadlines(int64(cfg.MinSendRate), cfg.SendTimeout))
	s.http = newHTTPServer(s.handler, o.log)
	return s, nil
}

// scratchDir is where the cache downloads zips to check them: the store's
// staging directory when it takes local files (one rename then stores a
// checked zip, and a crash's leftovers are cleaned with the store's own),
// else a directory under the data dir.
func scratchDir(st store.Store, dataDir string) (string, error) {
	if fp, ok := st.(store.FilePutter); ok {
		return fp.StagingDir(), nil
	}
	dir := filepath.Join(dataDir, ".tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data dir %s: scratch space: %w", dataDir, err)
	}
	removeStale(dir, time.Hour)
	return dir, nil
}

// closerOf returns what closes m: its Close method, if it has one (an
// error it returns is dropped: a wrapper logs its own failures), else nil.
func closerOf(m protocol.Modules) func() {
	switch c := m.(type) {
	case interface{ Close() }:
		return c.Close
	case interface{ Close() error }:
		return func() { c.Close() }
	}
	return nil
}

// cacheVerifier is v as the cache wants it: a nil interface, not an
// interface holding a nil pointer, when verification is off.
func cacheVerifier(v *sumdb.Verifier) cache.Verifier {
	if v == nil {
		return nil
	}
	return v
}

// Handler is the whole HTTP handler: request ids, metrics, access log and
// send deadlines (goproxy.Instrument) around the ops endpoints, the
// checksum database proxy and the GOPROXY protocol.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the address to serve on (--listen), accepting at most
// --max-conns connections at once, or fewer if the open-file limit cannot
// hold that many (which it logs).
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.cfg.Source("listen"), err)
	}
	return s.limitConns(ln), nil
}

// Serve serves Handler on ln, over TLS when --tls-cert is set, and cleans
// the storage of interrupted writes' leftovers while it serves. As
// http.Server.Serve it always returns an error: after Shutdown or Close,
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	janitor := s.startJanitor(ctx)
	retention := s.startRetention(ctx)
	usage := s.usage.start(ctx)
	defer func() {
		cancel()
		<-janitor
		<-retention
		<-usage
	}()
	if s.cfg.TLSCert != "" {
		return s.http.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
	}
	return s.http.Serve(ln)
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight to finish (http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

// Close closes the connections still open, then, from the outside in, the
// wrappers that have a Close method, the cache (its background refreshes
// and fetches) and the checksum database's background lookups, waiting
// for each to end. Call it after Shutdown, or instead of it when nothing
// needs draining.
func (s *Server) Close() {
	// Its only errors are from closing listeners Shutdown closed already.
	s.http.Close()
	s.warmup.close() // first: its jobs fetch through the policy and the cache
	s.gate.close()
	for i := len(s.closeWrappers) - 1; i >= 0; i-- {
		s.closeWrappers[i]() // outermost first
	}
	s.usage.close() // what was counted until now goes to the store
	s.cache.Close()
	s.closeGit() // after the cache, whose fetches read the mirrors
	if s.verifier != nil {
		s.verifier.Close() // the cache's fetches may be waiting for it
	}
	s.coord.close() // last: everything above may still take or free a lock
}

// closeGit stops the git mirrors' fetches, if there are mirrors.
func (s *Server) closeGit() {
	if s.git != nil {
		s.git.mirrors.Close()
	}
}

// Modules is what the GOPROXY handler asks: the module cache, inside the
// wrappers given with WithWrapper.
func (s *Server) Modules() protocol.Modules { return s.modules }

// Store is the storage (--data-dir).
func (s *Server) Store() store.Store { return s.store }

// Verifier checks fetched files against the checksum database; nil with
// --sumdb off.
func (s *Server) Verifier() *sumdb.Verifier { return s.verifier }

// Upstream is the upstream proxy list (--upstream), whose String names
// each entry with its credentials redacted.
func (s *Server) Upstream() *source.Chain { return s.chain }

// removeStale removes the files in dir last changed more than age ago:
// what a process killed while checking a zip left in its scratch space.
// A file being written is younger than that (the fetch timeout bounds a
// download). Errors are ignored: a file that stays costs only space.
func removeStale(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
