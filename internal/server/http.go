package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modgate/modgate/internal/catalog"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/httpserver"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/setup"
	"github.com/modgate/modgate/internal/sumdb"
	"github.com/modgate/modgate/internal/ui"
)

// routes is modgate's URL space: the ops endpoints, the checksum database
// proxy (sumProxy, nil with --sumdb off) and the GOPROXY protocol at every
// other path.
func (s *Server) routes(sumProxy *sumdb.Proxy) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	if sumProxy != nil {
		mux.Handle("/sumdb/", sumProxy.Handler(goproxy.WriteError))
	} else {
		mux.HandleFunc("/sumdb/", func(w http.ResponseWriter, r *http.Request) {
			goproxy.WriteError(w, r, http.StatusNotFound, "checksum database proxying is off (--sumdb off)")
		})
	}
	switch {
	case s.cfg.WebhookSecret != "" && s.git != nil:
		mux.Handle("/webhooks/git", s.webhookHandler())
	case s.git != nil:
		mux.HandleFunc("/webhooks/git", func(w http.ResponseWriter, r *http.Request) {
			goproxy.WriteError(w, r, http.StatusNotFound, "git webhooks are off; start modgate with --webhook-secret and give the git server the same secret")
		})
	}
	if s.gate.policy != nil {
		// The policy's verdicts on a build list (modgate scan), from the
		// cache without the policy around it (deciding may read a
		// version's .info, which the policy would refuse for a blocked
		// one) but within the token's patterns: a token cannot make
		// modgate fetch what it may not read.
		mux.Handle("POST /policy/check", s.gate.policy.CheckHandler(s.gate.authorized(s.cache)))
	}
	mux.Handle("GET /admin/v1/modules", s.gate.admin(catalog.Modules(s.store)))
	mux.Handle("GET /admin/v1/stats", s.gate.admin(catalog.Stats(s.store, metrics.Registry)))
	mux.Handle("GET /admin/v1/history", s.gate.admin(s.usage.history.Handler()))
	mux.Handle("DELETE /admin/v1/modules/{rest...}", s.gate.admin(http.HandlerFunc(s.purgeVersion)))
	mux.Handle("POST /admin/v1/refresh/{module...}", s.gate.admin(http.HandlerFunc(s.refreshModule)))
	s.warmup.routes(mux, s.gate)
	mux.Handle("GET /admin/v1/health", s.gate.admin(http.HandlerFunc(s.serveHealth)))
	mux.Handle("GET /admin/v1/policy", s.gate.admin(s.gate.policy.ViewHandler())) // 404 without --policy
	// The web UI's files hold no data: with tokens the page itself asks
	// for an admin token; without, it is as local as the admin API.
	mux.Handle("GET /ui/", s.gate.admin(ui.Handler()))
	mux.Handle("GET /ui", s.gate.admin(ui.Handler()))
	// Without an audit log (or with one on stdout) the handler says so:
	// 404 and 501 naming the option, which the web UI shows.
	mux.Handle("GET /admin/v1/audit", s.gate.admin(s.gate.audit.Handler()))
	// How to set a client up, for people (/, /setup), scripts (/setup.sh)
	// and modgate env and doctor (/setup.json).
	setupPages := setup.Handler(setup.Config{
		Private: s.cfg.Private, NoSumDB: s.cfg.NoSumDB, SumDB: s.cfg.SumDB,
		Tokens: s.cfg.Tokens != "", Anonymous: s.cfg.Anonymous, Version: s.version,
	})
	for _, p := range []string{"GET /{$}", "GET /setup", "GET /setup.sh", "GET /setup.json"} {
		mux.Handle(p, setupPages)
	}
	mux.Handle("/", &goproxy.Handler{Modules: s.modules})
	return mux
}

// serveReady answers /readyz: 200 while the storage is usable and the
// checksum database has not misbehaved, saying whether verification is on.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		// The cause names files of the server (or an endpoint): it goes to
		// the log, and the answer says where to look.
		s.log.Error("readiness: storage not usable", "err", err)
		goproxy.WriteError(w, r, http.StatusServiceUnavailable, "storage not usable; check modgate's data dir (or storage settings) and its log")
		return
	}
	if s.verifier == nil {
		fmt.Fprintln(w, "ready; WARNING: checksum verification is off (--sumdb off)")
		return
	}
	if msg := s.verifier.SecurityProblem(); msg != "" {
		goproxy.WriteError(w, r, http.StatusServiceUnavailable, "checksum database security error: "+msg)
		return
	}
	fmt.Fprintln(w, "ready; verifying against checksum database", redact.Text(s.verifier.DB().Name))
}

// newHTTPServer returns the http.Server that serves h.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: a cold fetch of a large module can take minutes and
		// the go command waits for it; fetches are bounded by --fetch-timeout.
		// Clients that stop reading are dropped by the send deadlines instead,
		// which only start with the response.
		IdleTimeout: 2 * time.Minute,
		// Request lines over goproxy.MaxRequestURI get a 414 from Instrument;
		// this bounds what net/http reads before that (larger header blocks
		// get its own 431).
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// limitConns caps open client connections at --max-conns, lowered to what
// the process's file descriptor limit can hold next to the files and
// upstream connections the server itself needs.
func (s *Server) limitConns(ln net.Listener) net.Listener {
	nofile := httpserver.FileLimit()
	n := httpserver.MaxConns(s.cfg.MaxConns, nofile)
	if n < s.cfg.MaxConns {
		s.log.Warn("connection limit lowered to fit the open-file limit; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
			"max_conns", n, "requested", s.cfg.MaxConns, "from", s.cfg.Source("max-conns"), "open_file_limit", nofile)
	}
	var lastFull atomic.Int64
	return httpserver.NewListener(ln, n, func() {
		// Once a minute at most: when full, this is called on every accept.
		now := time.Now().UnixNano()
		if last := lastFull.Load(); now-last >= int64(time.Minute) && lastFull.CompareAndSwap(last, now) {
			s.log.Warn("connection limit reached; new clients wait until connections close", "max_conns", n)
		}
	})
}
