// Package coordredis keeps modgate's coordination state in Redis, for
// several replicas over one storage: the leases of package coord (Locks),
// and the cache's shared tables of not-found answers, query answers and
// invalidations (Tables). Open connects to a single server, a Sentinel
// group or a Cluster.
//
// Nothing here guards correctness: storage writes are atomic and module
// files immutable, so a Redis that is down, restarted empty or evicting
// keys costs repeated work (duplicate fetches, extra source lookups), never
// a wrong answer. Every key has a TTL, so Redis never holds more than what
// the current leases and the tables' retention (package cache, tables.go)
// keep alive.
package coordredis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/modgate/modgate/internal/redact"
)

// Options say how to reach Redis. URL alone names one server; with
// SentinelMaster and SentinelAddrs the server is the master of that
// Sentinel group, with ClusterAddrs a Redis Cluster. The configuration file
// fills the lists; --redis gives the URL.
type Options struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS
	// (verified against the system's roots and the host name). go-redis's
	// query parameters (dial_timeout=3s, max_retries=2, ...) are accepted.
	// With Sentinel or Cluster, the URL gives the scheme, credentials and
	// database, and its host, if any, is one more sentinel or seed node:
	// redis://:password@/0 names none.
	URL string
	// SentinelMaster is the name of the master the sentinels watch.
	SentinelMaster string
	// SentinelAddrs are the sentinels' host:port addresses.
	SentinelAddrs []string
	// SentinelPassword authenticates to the sentinels, when they require it
	// (their requirepass; often not the master's).
	SentinelPassword string
	// ClusterAddrs are host:port addresses of some cluster nodes; the
	// others are learnt from them. The database must be 0.
	ClusterAddrs []string
}

// Open returns a client for opts. It does not connect: the first command
// does (client.Ping checks the settings at start). Errors never contain the
// password.
func Open(opts Options) (redis.UniversalClient, error) {
	if opts.URL == "" {
		return nil, errors.New("redis: no URL (redis://[user:password@]host:port/db or rediss://...)")
	}
	u, err := url.Parse(opts.URL)
	if err != nil || strings.Contains(u.Path+u.RawQuery+u.Fragment, "@") {
		// A password with an unescaped "/" or "#" ends the authority early:
		// url.Parse then fails on a "port" that is part of the password,
		// and quotes it, or parses the rest of the password as the path.
		// Say nothing of such a URL.
		return nil, errors.New("the redis URL is not of the form redis://[user:password@]host:port/db (it is not shown, as it may hold a password; escape any / # ? @ in the password as %2F %23 %3F %40)")
	}
	shown := redact.URL(opts.URL)
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redis URL %s: scheme must be redis or rediss (TLS)", shown)
	}
	sentinel := opts.SentinelMaster != "" || len(opts.SentinelAddrs) > 0
	cluster := len(opts.ClusterAddrs) > 0
	if sentinel && cluster {
		return nil, errors.New("redis: Sentinel and Cluster options are both set; choose one")
	}
	if sentinel && opts.SentinelMaster == "" {
		return nil, errors.New("redis: Sentinel addresses without the master's name")
	}
	if sentinel && len(opts.SentinelAddrs) == 0 && u.Host == "" {
		return nil, errors.New("redis: Sentinel master name without sentinel addresses")
	}
	o, err := redis.ParseURL(opts.URL)
	if err != nil {
		// After url.Parse succeeded these are about the path and the query
		// parameters (database number, an unknown or malformed option),
		// which carry no credentials.
		return nil, fmt.Errorf("redis URL %s: %v", shown, err)
	}
	if o.TLSConfig != nil {
		o.TLSConfig.MinVersion = tls.VersionTLS12
		if sentinel || cluster {
			// Each node is verified against its own host name (crypto/tls
			// takes it from the address it dials), not the URL's.
			o.TLSConfig.ServerName = ""
		}
	}
	addrs := func(more []string) ([]string, error) {
		var all []string
		if u.Host != "" {
			all = append(all, o.Addr)
		}
		for _, a := range more {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("redis: address %q is not host:port", a)
			}
			all = append(all, a)
		}
		return all, nil
	}
	switch {
	case sentinel:
		sa, err := addrs(opts.SentinelAddrs)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       opts.SentinelMaster,
			SentinelAddrs:    sa,
			SentinelPassword: opts.SentinelPassword,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			TLSConfig:        o.TLSConfig,
			DialTimeout:      o.DialTimeout,
			ReadTimeout:      o.ReadTimeout,
			WriteTimeout:     o.WriteTimeout,
			MaxRetries:       o.MaxRetries,
			PoolSize:         o.PoolSize,
			DisableIdentity:  true,
		}), nil
	case cluster:
		if o.DB != 0 {
			return nil, fmt.Errorf("redis URL %s: a Redis Cluster has only database 0", shown)
		}
		ca, err := addrs(opts.ClusterAddrs)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:           ca,
			Username:        o.Username,
			Password:        o.Password,
			TLSConfig:       o.TLSConfig,
			DialTimeout:     o.DialTimeout,
			ReadTimeout:     o.ReadTimeout,
			WriteTimeout:    o.WriteTimeout,
			MaxRetries:      o.MaxRetries,
			PoolSize:        o.PoolSize,
			DisableIdentity: true,
		}), nil
	}
	if u.Host == "" {
		return nil, fmt.Errorf("redis URL %s has no host", shown)
	}
	// CLIENT SETINFO only adds noise to the server's client list (and is
	// unknown to servers before 7.2).
	o.DisableIdentity = true
	return redis.NewClient(o), nil
}

// keyJoin builds a Redis key under prefix.
func keyJoin(prefix, kind, key string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(kind) + 1 + len(key))
	b.WriteString(prefix)
	b.WriteString(kind)
	b.WriteByte(':')
	b.WriteString(key)
	return b.String()
}

// SetLogger sends go-redis's own messages (failed dials, pool trouble),
// which it otherwise prints to standard error, to l at warn level,
// credentials redacted. go-redis has one logger per process.
func SetLogger(l *slog.Logger) { redis.SetLogger(slogAdapter{l}) }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.l.WarnContext(ctx, "redis client", "msg", redact.Text(fmt.Sprintf(format, v...)))
}
