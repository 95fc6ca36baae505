package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/mod/module"
)

// Route sends the modules whose paths match Patterns to Source.
type Route struct {
	// Patterns is a comma-separated list of glob patterns, each matching
	// a module path prefix, in GOPRIVATE syntax
	// (module.MatchPrefixPatterns): "corp.example.com,*.internal".
	Patterns string
	// Source answers for the route's modules, alone: what it does not
	// have is not found, and no other source is asked.
	Source Source
	// Private marks the route's modules as the company's own: besides
	// never being sent to another source, their paths are never looked
	// up in the checksum database (Router.Private).
	Private bool
}

// Router chooses the source of a module by its path before anything is
// fetched, as the go command's modfetch.lookup sends GONOPROXY paths to
// version control and everything else to the GOPROXY list: the first route
// whose patterns match the path answers for it, and paths no route matches
// go to the default source (the upstream chain).
//
// A route's answer is final, not-found included: a private module's name
// must never reach a public proxy, so nothing falls through from a route to
// the default. A route that should fall through names a Chain as its
// source.
type Router struct {
	routes []Route
	def    Source
}

// NewRouter returns a router over routes, tried in order, in front of def.
// Every route needs a source and at least one valid pattern.
func NewRouter(def Source, routes ...Route) (*Router, error) {
	if def == nil {
		return nil, errors.New("router: no default source")
	}
	for i, r := range routes {
		if r.Source == nil {
			return nil, fmt.Errorf("route %d (%s): no source", i+1, r.Patterns)
		}
		if err := checkPatterns(r.Patterns); err != nil {
			return nil, fmt.Errorf("route %d: %v", i+1, err)
		}
	}
	return &Router{routes: append([]Route(nil), routes...), def: def}, nil
}

// checkPatterns accepts a non-empty GOPRIVATE-syntax list of path.Match
// patterns.
func checkPatterns(patterns string) error {
	n := 0
	for g := range strings.SplitSeq(patterns, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("invalid pattern %q: %v", g, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no module path patterns in %q", patterns)
	}
	return nil
}

// route returns the route that answers for modPath, or nil for the default.
func (r *Router) route(modPath string) *Route {
	for i := range r.routes {
		if module.MatchPrefixPatterns(r.routes[i].Patterns, modPath) {
			return &r.routes[i]
		}
	}
	return nil
}

// source returns the source that answers for modPath.
func (r *Router) source(modPath string) Source {
	if rt := r.route(modPath); rt != nil {
		return rt.Source
	}
	return r.def
}

// Private reports whether modPath belongs to a private route: its name must
// not leave the company, to an upstream or to the checksum database.
func (r *Router) Private(modPath string) bool {
	rt := r.route(modPath)
	return rt != nil && rt.Private
}

// String names the routes and the default, credentials redacted as each
// source redacts its own name. Without routes it is the default's name.
func (r *Router) String() string {
	var b strings.Builder
	for _, rt := range r.routes {
		b.WriteString(rt.Patterns)
		if rt.Private {
			b.WriteString(" (private)")
		}
		b.WriteString(" -> ")
		b.WriteString(rt.Source.String())
		b.WriteString("; ")
	}
	if b.Len() > 0 {
		b.WriteString("others -> ")
	}
	b.WriteString(r.def.String())
	return b.String()
}

func (r *Router) List(ctx context.Context, path string) ([]string, error) {
	return answer(ctx, r.source(path), func(ctx context.Context, s Source) ([]string, error) { return s.List(ctx, path) })
}

func (r *Router) Latest(ctx context.Context, path string) ([]byte, error) {
	return answer(ctx, r.source(path), func(ctx context.Context, s Source) ([]byte, error) { return s.Latest(ctx, path) })
}

func (r *Router) Info(ctx context.Context, path, query string) ([]byte, error) {
	return answer(ctx, r.source(path), func(ctx context.Context, s Source) ([]byte, error) { return s.Info(ctx, path, query) })
}

func (r *Router) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	return answer(ctx, r.source(path), func(ctx context.Context, s Source) ([]byte, error) { return s.GoMod(ctx, path, version) })
}

func (r *Router) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	return answer(ctx, r.source(path), func(ctx context.Context, s Source) (io.ReadCloser, error) { return s.Zip(ctx, path, version) })
}
