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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/httpserver"
	"github.com/modgate/modgate/internal/logging"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/redact"
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
	if b.verifier != nil {
		defer b.verifier.Close() // last: waits for its background lookups
	}
	modules := cache.New(cache.Config{
		Store:  b.disk,
		Source: b.router,
		// Zips being fetched are checked in the disk store's staging
		// directory: one rename stores them, and leftovers of a crash are
		// cleaned with the rest.
		ScratchDir:  b.disk.StagingDir(),
		ListTTL:     cfg.ListTTL,
		NegativeTTL: cfg.NegativeTTL,
		// Per client address: behind a load balancer all clients share
		// its address, and the operator raises or disables the limit.
		UpstreamRate:  float64(cfg.UpstreamRate),
		UpstreamBurst: cfg.UpstreamBurst,
		FetchTimeout:  cfg.FetchTimeout,
		Logger:        log,
		Verifier:      b.cacheVerifier(),
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
			// WriteError redacts: a storage error may quote an endpoint URL.
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
		fmt.Fprintln(w, "ready; verifying against checksum database", redact.Text(b.verifier.DB().Name))
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
		Handler: goproxy.Instrument(log, mux,
			goproxy.SendDeadlines(int64(cfg.MinSendRate), cfg.SendTimeout)),
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
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Source("listen"), err)
	}
	ln = limitConns(ln, cfg, log)
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	upstreamFrom := "configured"
	if cfg.UpstreamDerived {
		upstreamFrom = cfg.Source("upstream")
	}
	// The message names the URL too (followed by a space), so that one
	// pattern finds it in text and JSON logs alike (internal/testenv does).
	serveURL := scheme + "://" + displayAddr(ln.Addr())
	log.Info("serving on "+serveURL+" (clients: go env -w GOPROXY="+serveURL+")", "version", modgateVersion(),
		"addr", ln.Addr().String(), "scheme", scheme, "data_dir", cfg.DataDir, "upstream", b.chain.String(),
		"upstream_from", upstreamFrom)
	// For a human at a terminal or reading text logs; in JSON mode a log
	// shipper reads stderr, and every line there must be JSON.
	if cfg.LogFormat == "text" || isTerminal(os.Stderr) {
		fmt.Fprintf(os.Stderr, "modgate: serving on %s — clients: go env -w GOPROXY=%s\n", serveURL, serveURL)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b.startStagingJanitor(ctx, log) // leftovers of killed writes, while serving
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
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	// Upstream URLs may carry credentials, and errors of the libraries
	// modgate uses quote URLs: nothing logged shows them.
	return slog.New(logging.Redact(h))
}

// isTerminal reports whether f is a character device (a terminal, or
// /dev/null), not a pipe or file that a log shipper reads.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// limitConns caps open client connections at --max-conns, lowered to what
// the process's file descriptor limit can hold next to the files and
// upstream connections the server itself needs.
func limitConns(ln net.Listener, cfg *config.Config, log *slog.Logger) net.Listener {
	nofile := httpserver.FileLimit()
	n := httpserver.MaxConns(cfg.MaxConns, nofile)
	if n < cfg.MaxConns {
		log.Warn("connection limit lowered to fit the open-file limit; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
			"max_conns", n, "requested", cfg.MaxConns, "from", cfg.Source("max-conns"), "open_file_limit", nofile)
	}
	var lastFull atomic.Int64
	return httpserver.NewListener(ln, n, func() {
		// Once a minute at most: when full, this is called on every accept.
		now := time.Now().UnixNano()
		if last := lastFull.Load(); now-last >= int64(time.Minute) && lastFull.CompareAndSwap(last, now) {
			log.Warn("connection limit reached; new clients wait until connections close", "max_conns", n)
		}
	})
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
