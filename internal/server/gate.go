package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/modgate/modgate/internal/audit"
	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/protocol"
)

// gateParts are the gate the configuration asks for: tokens
// (authentication and authorization by module path), the download policy
// and the audit log. Each is nil when off.
type gateParts struct {
	tokens *auth.Store
	gate   *auth.Gate
	policy *policy.Engine
	audit  *audit.Log
	// adminOpen lets any client use the admin API while tokens are off
	// (--admin-open).
	adminOpen bool
}

// newGate opens what cfg names. On error, what was opened is closed.
func newGate(cfg *config.Config, client *http.Client, log *slog.Logger) (_ *gateParts, err error) {
	g := &gateParts{adminOpen: cfg.AdminOpen}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if cfg.Tokens != "" {
		if g.tokens, err = auth.Open(cfg.Tokens, log); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Source("tokens"), err)
		}
		g.gate = auth.NewGate(g.tokens, cfg.Anonymous)
		if cfg.TLSCert == "" {
			log.Warn("tokens are on but modgate serves plain http: the go command sends credentials only over https; set --tls-cert and --tls-key, or terminate TLS in front of modgate")
		}
		if cfg.AdminOpen {
			log.Warn("--admin-open has no effect with --tokens: the admin API and the web UI need an admin token")
		}
	} else if cfg.Anonymous != "" {
		log.Warn("--anonymous has no effect without --tokens: every path is readable without a token")
	}
	if cfg.Tokens == "" && cfg.AdminOpen {
		log.Warn("--admin-open: the admin API and the web UI answer every client without authentication; make sure something in front of modgate authenticates them")
	}
	if cfg.Policy != "" {
		g.policy, err = policy.New(policy.Config{File: cfg.Policy, DryRun: cfg.PolicyDryRun, Logger: log, Client: client})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Source("policy"), err)
		}
	} else if cfg.PolicyDryRun {
		log.Warn("--policy-dry-run has no effect without --policy")
	}
	if cfg.AuditLog != "" {
		g.audit, err = audit.Open(cfg.AuditLog, audit.Config{MaxSize: int64(cfg.AuditMaxSize), MaxFiles: cfg.AuditMaxFiles, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Source("audit-log"), err)
		}
	}
	return g, nil
}

// wrap puts the gate around m, outermost last: the policy, then the
// authorization by module path, then the audit log, which sees both
// kinds of refusal.
func (g *gateParts) wrap(m protocol.Modules) protocol.Modules {
	if g.policy != nil {
		m = g.policy.Wrap(m)
	}
	if g.gate != nil {
		m = g.gate.Wrap(m)
	}
	return audit.Wrap(m, g.audit) // m itself when the audit log is off
}

// authorized is m as a token may read it: with tokens on, a module
// outside the request's token patterns is refused before m is asked.
func (g *gateParts) authorized(m protocol.Modules) protocol.Modules {
	if g.gate == nil {
		return m
	}
	return g.gate.Wrap(m)
}

// middleware authenticates requests before h when tokens are on.
func (g *gateParts) middleware(h http.Handler) http.Handler {
	if g.gate == nil {
		return h
	}
	return g.gate.Middleware(h)
}

// admin guards the admin API and the web UI. Unsafe requests must come
// from the same origin (sameOrigin). With tokens, the middleware demands an
// admin token; without tokens only clients on a loopback address, asking
// for a loopback host, get through, unless --admin-open lets everyone.
func (g *gateParts) admin(h http.Handler) http.Handler {
	h = sameOrigin(h)
	if g.gate != nil || g.adminOpen {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackAddr(r.RemoteAddr) {
			goproxy.WriteError(w, r, http.StatusForbidden, "the admin API answers only local clients while tokens are off; start modgate with --tokens and use an admin token (or --admin-open behind an authenticating proxy)")
			return
		}
		// A page on another site whose name is made to resolve to
		// 127.0.0.1 (DNS rebinding) runs in the browser of a local user,
		// but its requests still name its own host.
		if !loopbackHost(r.Host) {
			goproxy.WriteError(w, r, http.StatusForbidden, "while tokens are off, the admin API answers only requests for localhost, 127.0.0.1 or [::1]; use one of those in the URL")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sameOrigin refuses state-changing requests that a browser sends on
// behalf of another site (a form posted cross-site needs no CORS
// preflight), by the Fetch Metadata and Origin headers browsers add;
// clients that are not browsers send neither and pass.
func sameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		site := r.Header.Get("Sec-Fetch-Site")
		crossSite := site != "" && site != "same-origin" && site != "none"
		if o := r.Header.Get("Origin"); o != "" && !crossSite {
			u, err := url.Parse(o)
			crossSite = err != nil || !strings.EqualFold(u.Host, r.Host)
		}
		if crossSite {
			goproxy.WriteError(w, r, http.StatusForbidden, "cross-site request to the admin API refused; call it from modgate's own web UI or from a script")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// loopbackHost reports a Host header naming this machine's loopback
// interface, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (g *gateParts) close() {
	if g == nil {
		return
	}
	if g.policy != nil {
		g.policy.Close()
	}
	if g.audit != nil {
		g.audit.Close()
	}
	if g.tokens != nil {
		g.tokens.Close()
	}
}
