package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
)

// Option adds to or changes what New builds from the configuration.
type Option func(*options)

type options struct {
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	routes   []source.Route
	wrappers []func(protocol.Modules) protocol.Modules
	newCache func(cache.Config) *cache.Modules
	version  string
}

// WithLogger sets the logger of every part of the server (default
// slog.Default()).
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

// WithClock sets the clock that decides freshness and rate limits in the
// cache (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithHTTPClient sets the client that reaches the upstreams and the
// checksum database. The default is source.NewHTTPClient with
// --upstream-idle-timeout; a replacement should bound idle reads too.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.client = c }
}

// WithRoutes puts routes in front of the upstream chain, tried in order: a
// module whose path matches a route's patterns is fetched from its source
// alone (source.Router). The paths of Private routes are never verified
// nor looked up in the checksum database, as --nosumdb's.
func WithRoutes(routes ...source.Route) Option {
	return func(o *options) { o.routes = append(o.routes, routes...) }
}

// WithWrapper puts wrap around the modules the GOPROXY handler asks
// (authentication, policy, audit, prefetch; see package protocol). The
// handler asks the wrapper given first, which asks the next, and the last
// asks the cache. A wrapper with a Close method is closed by Server.Close
// before what it wraps.
func WithWrapper(wrap func(protocol.Modules) protocol.Modules) Option {
	return func(o *options) { o.wrappers = append(o.wrappers, wrap) }
}

// WithNewCache makes New build the cache with newCache instead of
// cache.New, from the cache.Config it derived from the configuration:
// tests use it to give the cache small in-memory tables, or to keep it.
func WithNewCache(newCache func(cache.Config) *cache.Modules) Option {
	return func(o *options) { o.newCache = newCache }
}

// WithVersion sets the version the server tells clients about (/setup,
// /setup.json); default "devel".
func WithVersion(v string) Option {
	return func(o *options) { o.version = v }
}
