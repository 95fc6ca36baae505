package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/metrics"
)

func serve(args []string) error {
	cfg, err := config.LoadEnviron(args, os.Environ())
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	slog.SetDefault(log)

	b, err := newBackends(cfg, log)
	if err != nil {
		return err
	}
	modules := cache.New(cache.Config{
		Store:  b.disk,
		Source: b.chain,
		// Zips being fetched are checked in the disk store's staging
		// directory: one rename stores them, and leftovers of a crash are
		// cleaned with the rest.
		ScratchDir:   b.disk.StagingDir(),
		ListTTL:      cfg.ListTTL,
		NegativeTTL:  cfg.NegativeTTL,
		FetchTimeout: cfg.FetchTimeout,
		Logger:       log,
		Verifier:     b.cacheVerifier(),
	})
	defer modules.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := b.disk.Ping(ctx); err != nil {
			goproxy.WriteError(w, r, http.StatusServiceUnavailable, "storage not usable: "+err.Error())
			return
		}
		if b.verifier == nil {
			fmt.Fprintln(w, "ready; WARNING: checksum verification is off (--sumdb off)")
			return
		}
		if msg := b.verifier.SecurityProblem(); msg != "" {
			goproxy.WriteError(w, r, http.StatusServiceUnavailable, "checksum database security error: "+msg)
			return
		}
		fmt.Fprintln(w, "ready; verifying against checksum database", b.verifier.DB().Name)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	if b.sumProxy != nil {
		mux.Handle("/sumdb/", b.sumProxy.Handler(goproxy.WriteError))
	} else {
		mux.HandleFunc("/sumdb/", func(w http.ResponseWriter, r *http.Request) {
			goproxy.WriteError(w, r, http.StatusNotFound, "checksum database proxying is off (--sumdb off)")
		})
	}
	mux.Handle("/", &goproxy.Handler{Modules: modules})

	srv := &http.Server{
		Handler:           goproxy.Instrument(log, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: a cold fetch of a large module can take minutes and
		// the go command waits for it; fetches are bounded by --fetch-timeout.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Source("listen"), err)
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	upstreamFrom := "configured"
	if cfg.UpstreamDerived {
		upstreamFrom = cfg.Source("upstream")
	}
	log.Info("modgate serving", "version", version, "addr", ln.Addr().String(), "scheme", scheme,
		"data_dir", cfg.DataDir, "upstream", b.chain.String(), "upstream_from", upstreamFrom)
	fmt.Fprintf(os.Stderr, "modgate: serving on %s://%s — clients: go env -w GOPROXY=%s://%s\n",
		scheme, displayAddr(ln.Addr()), scheme, displayAddr(ln.Addr()))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not drain in time", "err", err)
		return nil
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config.Load
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// displayAddr turns a wildcard listen address into one a client can use.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && !strings.ContainsAny(h, " /") {
			host = h
		} else {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, port)
}
