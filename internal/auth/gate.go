package auth

import (
	"context"
	"encoding/base64"
	"net/http"
	"path"
	"strings"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
)

// Gate authenticates requests (Middleware) and authorizes module reads
// by module path (Wrap). Authentication happens before the mux, so that
// every handler sees a principal; authorization happens on the Modules
// interface, where the module path is known and before anything (cache,
// upstream, git) is asked, so that a refusal says nothing about whether
// the module or its versions exist.
type Gate struct {
	store *Store
	// anonymous holds the patterns readable without a token
	// (comma-separated, GOPRIVATE syntax); "" for none.
	anonymous string
}

// NewGate returns a Gate over the tokens of store. anonymous lists, in
// GOPRIVATE syntax, the module paths readable without a token ("" for
// none; the caller has checked it with ParsePatterns).
func NewGate(store *Store, anonymous string) *Gate {
	if store == nil {
		panic("auth.NewGate: nil Store")
	}
	return &Gate{store: store, anonymous: anonymous}
}

// challenge is the WWW-Authenticate value of every 401: basic auth is
// what makes the go command send its .netrc and GOAUTH credentials.
const challenge = `Basic realm="modgate"`

// pathClass is what a URL path needs.
type pathClass int

const (
	classModules pathClass = iota // the GOPROXY protocol: authorized per module in Wrap
	classOpen                     // no authentication at all
	classAdmin                    // an admin token
	classSumDB                    // a token, unless some paths are anonymous
)

// classify sorts a request path. It looks at the cleaned path, as the
// mux routes by it: "/x/../admin/" is an admin path.
func classify(p string) pathClass {
	p = path.Clean("/" + p)
	switch {
	case p == "/healthz" || p == "/readyz":
		return classOpen
	case p == "/" || p == "/setup" || p == "/setup.sh" || p == "/setup.json":
		// How to set a client up: what a developer reads before having a
		// token, naming no module.
		return classOpen
	case p == "/webhooks/git":
		// The webhook checks its own secret; a git server sends no token.
		return classOpen
	case p == "/ui" || strings.HasPrefix(p, "/ui/"):
		// The web UI's static files: no data (that comes from /admin/,
		// with the admin token the page asks for), and the sign-in page
		// must load whatever Authorization a browser sends.
		return classOpen
	case p == "/metrics" || p == "/admin" || strings.HasPrefix(p, "/admin/"):
		return classAdmin
	case p == "/sumdb" || strings.HasPrefix(p, "/sumdb/") || p == "/policy/check":
		// Public data, or a verdict on versions the client names: a
		// token, unless some paths are readable without one.
		return classSumDB
	}
	return classModules
}

// credential returns the token a request carries: the bearer token, or
// the password of basic auth (any user name: that is what .netrc and
// most GOAUTH helpers produce). present reports an Authorization header,
// whatever its form; a header in no form modgate reads yields present
// with secret "", which no token matches.
func credential(r *http.Request) (secret string, present bool) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", false
	}
	if len(values) > 1 {
		return "", true
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return rest, true
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", true
		}
		_, password, ok := strings.Cut(string(raw), ":")
		if !ok {
			return "", true
		}
		return password, true
	}
	return "", true
}

type grantKey struct{}

// Middleware authenticates each request to next. A request with a token
// modgate does not know (revoked, mistyped) is refused with 401 and a
// basic-auth challenge whatever it asks for, except the open paths
// (/healthz, /readyz, /webhooks/git, the web UI's files under /ui/),
// which never look at credentials.
// /metrics and /admin/ need an admin token; /sumdb/ needs a token unless
// some module paths are anonymous (the checksum database is public data,
// and a client allowed anonymous reads needs it to verify them). Any
// other request goes on with its principal (a token's name, or
// protocol.Anonymous) in its context, for Wrap to authorize per module.
func (g *Gate) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class := classify(r.URL.Path)
		if class == classOpen {
			next.ServeHTTP(w, r)
			return
		}
		secret, present := credential(r)
		var gr *grant
		if present {
			var ok bool
			if gr, ok = g.store.lookup(secret); !ok {
				unauthorized(w, r, "the token sent is not valid (unknown or revoked); check the token in GOAUTH or .netrc for this server")
				return
			}
		}
		switch class {
		case classAdmin:
			if gr == nil {
				unauthorized(w, r, "this endpoint needs an admin token")
				return
			}
			if !gr.Admin {
				goproxy.WriteError(w, r, http.StatusForbidden, "token "+gr.Name+" is not an admin token")
				return
			}
		case classSumDB:
			if gr == nil && g.anonymous == "" {
				unauthorized(w, r, "the checksum database needs a token; set GOAUTH or .netrc for this server")
				return
			}
		}
		ctx := r.Context()
		if gr == nil {
			ctx = protocol.WithPrincipal(ctx, protocol.Principal{Name: protocol.Anonymous})
		} else {
			ctx = protocol.WithPrincipal(ctx, protocol.Principal{Name: gr.Name, Admin: gr.Admin})
			ctx = context.WithValue(ctx, grantKey{}, gr)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	goproxy.WriteError(w, r, http.StatusUnauthorized, msg)
}

// Wrap returns inner behind the gate: every question about a module is
// answered only for a principal whose patterns match the module path,
// checked before inner is asked. Without a token, that is the anonymous
// patterns, and a refusal is a 401 (UnauthorizedError), so that the go
// command retries with its credentials; with a token, a 403
// (ForbiddenError) naming the token. Either refusal is the same for a
// module that exists and one that does not. A context without a
// principal (Middleware not in front) is refused: the gate fails closed.
func (g *Gate) Wrap(inner protocol.Modules) protocol.Modules {
	return &gated{inner: inner, gate: g}
}

type gated struct {
	inner protocol.Modules
	gate  *Gate
}

// authorize reports whether the request of ctx may read module path.
func (g *gated) authorize(ctx context.Context, path string) error {
	p, ok := protocol.PrincipalFrom(ctx)
	if !ok {
		return &protocol.ForbiddenError{Msg: path + ": request not authenticated (modgate's authentication middleware is not in front of this handler)"}
	}
	if p.Name == protocol.Anonymous {
		if g.gate.anonymous != "" && module.MatchPrefixPatterns(g.gate.anonymous, path) {
			return nil
		}
		return &protocol.UnauthorizedError{Msg: path + ": a token is needed; set GOAUTH or .netrc for this server"}
	}
	gr, ok := ctx.Value(grantKey{}).(*grant)
	if !ok || gr.Name != p.Name {
		// A principal set by something other than Middleware.
		return &protocol.ForbiddenError{Msg: path + ": request not authenticated by modgate's token gate"}
	}
	if module.MatchPrefixPatterns(gr.patterns, path) {
		return nil
	}
	return &protocol.ForbiddenError{Msg: "token " + gr.Name + " may not read " + path}
}

func (g *gated) List(ctx context.Context, path string) (*protocol.Versions, error) {
	if err := g.authorize(ctx, path); err != nil {
		return nil, err
	}
	return g.inner.List(ctx, path)
}

func (g *gated) Latest(ctx context.Context, path string) (*protocol.File, error) {
	if err := g.authorize(ctx, path); err != nil {
		return nil, err
	}
	return g.inner.Latest(ctx, path)
}

func (g *gated) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	if err := g.authorize(ctx, path); err != nil {
		return nil, err
	}
	return g.inner.Info(ctx, path, query)
}

func (g *gated) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.authorize(ctx, path); err != nil {
		return nil, err
	}
	return g.inner.GoMod(ctx, path, version)
}

func (g *gated) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.authorize(ctx, path); err != nil {
		return nil, err
	}
	return g.inner.Zip(ctx, path, version)
}
