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

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/logging"
	"github.com/modgate/modgate/internal/server"
)

// serve runs the proxy until SIGTERM or an interrupt, then stops accepting
// connections and drains the requests in flight for --shutdown-timeout.
func serve(args []string) error {
	cfg, err := config.LoadEnviron(args, os.Environ())
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := server.New(ctx, cfg, server.WithLogger(log), server.WithVersion(modgateVersion()))
	if err != nil {
		return err
	}
	defer srv.Close() // after the drain: stops background fetches and lookups
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	announce(cfg, log, ln.Addr(), srv.Upstream().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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

// announce logs the URL clients use, and with it what modgate serves.
func announce(cfg *config.Config, log *slog.Logger, addr net.Addr, upstream string) {
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
	serveURL := scheme + "://" + displayAddr(addr)
	log.Info("serving on "+serveURL+" (clients: go env -w GOPROXY="+serveURL+")", "version", modgateVersion(),
		"addr", addr.String(), "scheme", scheme, "data_dir", cfg.DataDir, "upstream", upstream,
		"upstream_from", upstreamFrom)
	// For a human at a terminal or reading text logs; in JSON mode a log
	// shipper reads stderr, and every line there must be JSON.
	if cfg.LogFormat == "text" || isTerminal(os.Stderr) {
		fmt.Fprintf(os.Stderr, "modgate: serving on %s — clients: go env -w GOPROXY=%s\n", serveURL, serveURL)
	}
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
