package coordredis_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	coordredis "github.com/modgate/modgate/internal/coord/redis"
	"github.com/modgate/modgate/internal/testenv/redisserver"
)

func TestMain(m *testing.M) {
	if env := os.Getenv(holderEnv); env != "" {
		runHolder(env) // a helper process of TestKilledHolder; never returns
	}
	// The tests that take Redis down make go-redis complain on every dial.
	coordredis.SetLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

const secret = "s3cr3t-pw"

func TestOpenURL(t *testing.T) {
	for _, tc := range []struct {
		url       string
		addr      string
		db        int
		user, pw  string
		tls       bool
		serverTLS string
	}{
		{url: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{url: "redis://redis.internal:6380/3", addr: "redis.internal:6380", db: 3},
		{url: "redis://modgate:" + secret + "@redis.internal:6379/1", addr: "redis.internal:6379", db: 1, user: "modgate", pw: secret},
		{url: "redis://:" + secret + "@redis.internal", addr: "redis.internal:6379", pw: secret},
		{url: "rediss://redis.internal:6380/0", addr: "redis.internal:6380", tls: true, serverTLS: "redis.internal"},
	} {
		c, err := coordredis.Open(coordredis.Options{URL: tc.url})
		if err != nil {
			t.Errorf("Open(%s): %v", tc.url, err)
			continue
		}
		o := c.(*redis.Client).Options()
		if o.Addr != tc.addr || o.DB != tc.db || o.Username != tc.user || o.Password != tc.pw || (o.TLSConfig != nil) != tc.tls {
			t.Errorf("Open(%s): addr %s db %d user %q password %q TLS %v", tc.url, o.Addr, o.DB, o.Username, o.Password, o.TLSConfig != nil)
		}
		if tc.tls && o.TLSConfig.ServerName != tc.serverTLS {
			t.Errorf("Open(%s): TLS server name %q, want %q", tc.url, o.TLSConfig.ServerName, tc.serverTLS)
		}
		c.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		opts coordredis.Options
		want string
	}{
		{coordredis.Options{}, "no URL"},
		{coordredis.Options{URL: "http://u:" + secret + "@host:6379/0"}, "scheme must be redis or rediss"},
		{coordredis.Options{URL: "redis://u:" + secret + "/x@host:6379/0"}, "not of the form"},
		{coordredis.Options{URL: "redis://:123/456@host:6379/0"}, "not of the form"},
		{coordredis.Options{URL: "redis://u:" + secret + "@host:6379/zero"}, "invalid database number"},
		{coordredis.Options{URL: "redis://u:" + secret + "@host:6379/0?bogus=1"}, "bogus"},
		{coordredis.Options{URL: "redis://u:" + secret + "@host:6379/2", ClusterAddrs: []string{"a:1"}}, "only database 0"},
		{coordredis.Options{URL: "redis://u:" + secret + "@/0", SentinelAddrs: []string{"a:1"}}, "master's name"},
		{coordredis.Options{URL: "redis://:" + secret + "@/0", SentinelMaster: "m"}, "without sentinel addresses"},
		{coordredis.Options{URL: "redis:///0", SentinelMaster: "m", SentinelAddrs: []string{"a:1"}, ClusterAddrs: []string{"b:1"}}, "choose one"},
		{coordredis.Options{URL: "redis:///0", ClusterAddrs: []string{"no-port"}}, "not host:port"},
		{coordredis.Options{URL: "redis://:" + secret + "@/0"}, "has no host"},
	} {
		c, err := coordredis.Open(tc.opts)
		if err == nil {
			c.Close()
			t.Errorf("Open(%+v) succeeded, want an error", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %q, want it to say %q", tc.opts, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr") {
			t.Errorf("Open(%+v) error shows the password: %q", tc.opts, err)
		}
	}
}

// TestPassword: the URL's password authenticates; a wrong one fails with
// an error that shows neither.
func TestPassword(t *testing.T) {
	srv := redisserver.StartOptions(t, redisserver.Options{Password: secret})
	ctx := context.Background()
	c := open(t, coordredis.Options{URL: srv.URL})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping with the password: %v", err)
	}
	bad := open(t, coordredis.Options{URL: "redis://:wrong-" + secret + "@" + srv.Addr + "/0"})
	locks := coordredis.New(bad, prefix())
	_, _, err := locks.TryLock(ctx, "k", time.Second)
	if err == nil {
		t.Fatal("TryLock with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the password: %q", err)
	}
}

// TestCluster: locks and tables work on a Redis Cluster (one node owning
// every slot), through a client opened with ClusterAddrs.
func TestCluster(t *testing.T) {
	srv := redisserver.StartOptions(t, redisserver.Options{Cluster: true})
	c := open(t, coordredis.Options{URL: "redis:///0", ClusterAddrs: []string{srv.Addr}})
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("Open with ClusterAddrs returned a %T", c)
	}
	ctx := context.Background()
	locks := coordredis.New(c, prefix())
	lease, ok, err := locks.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	if _, ok, _ := locks.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("TryLock of a held key succeeded")
	}
	if err := lease.Renew(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	tables := coordredis.NewTables(c, prefix())
	key := [32]byte{1}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tables.Invalidations.Put(ctx, key, at, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := tables.Invalidations.Get(ctx, key); err != nil || !got.Equal(at) {
		t.Fatalf("invalidation read back as %v, %v; want %v", got, err, at)
	}
}
